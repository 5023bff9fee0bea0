/* SPDX-License-Identifier: MIT */
/*
 * The net device's back-end when no --socket is given: vuiso-vmm starts
 * DPDK's dpdk-testpmd itself, with its net_vhost PMD (a real, unmodified
 * vhost-user net back-end) serving a socket in a private temporary
 * directory, and stops it whatever the outcome.
 *
 * testpmd forwards what it receives back on the same queue (io: as is;
 * macswap: with the MAC addresses swapped).  Without a terminal it waits
 * for a line on stdin: a newline makes it stop forwarding, print its
 * counters and exit, which is how the VMM learns what testpmd dropped.  If
 * the VMM dies, the kernel kills testpmd (PR_SET_PDEATHSIG).
 *
 * Setup facts for DPDK 22.11 (Debian 12): it needs two lcores (main and
 * forwarding), and without hugepages its default mbuf pool does not fit in
 * -m 512, so the pool is given explicitly.
 */
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_TIMEOUT_S 60
#define STOP_TIMEOUT_S 10

static void child(struct vmm_testpmd *t, const char *bin, unsigned pairs,
		  bool macswap, int in_rd, int log_fd)
{
	char vdev[sizeof(t->sock) + 64], qarg[32], fwd[32], prefix[64];

	cpu_set_t all;

	/* Dies with the VMM, whatever kills it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Its lcores are its own (-l 0,1), whatever CPUs the VMM was
	 * pinned to (taskset in examples/bench-net.sh). */
	CPU_ZERO(&all);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		CPU_SET(cpu, &all);
	sched_setaffinity(0, sizeof(all), &all);
	if (getppid() != t->parent)
		_exit(127);
	dup2(in_rd, 0);
	dup2(log_fd, 1);
	dup2(log_fd, 2);
	snprintf(vdev, sizeof(vdev), "net_vhost0,iface=%s,queues=%u", t->sock,
		 pairs);
	snprintf(qarg, sizeof(qarg), "%u", pairs);
	snprintf(prefix, sizeof(prefix), "--file-prefix=%s", t->prefix);
	snprintf(fwd, sizeof(fwd), "--forward-mode=%s",
		 macswap ? "macswap" : "io");
	/* No hugepages, no shared config files: nothing left behind but an
	 * empty run directory, removed in vmm_testpmd_stop(). */
	/* Line-buffered (coreutils' stdbuf), so that its log shows when it
	 * starts to forward (forwarding()). */
	execlp("stdbuf", "stdbuf", "-oL", bin, "-l", "0,1", "--no-pci",
	       "--no-huge", "-m", "512", "--no-shconf", "--no-telemetry",
	       prefix, "--vdev", vdev, "--", fwd, "--auto-start",
	       "--total-num-mbufs=8192", "--nb-cores=1", "--rxq", qarg, "--txq",
	       qarg, (char *)NULL);
	dprintf(2, "vuiso-vmm: cannot run stdbuf (coreutils) for %s: %s\n", bin,
		strerror(errno));
	_exit(127);
}

/* The last lines of testpmd's log, for an error message. */
static void log_tail(const struct vmm_testpmd *t, char *buf, size_t size)
{
	char all[8192];
	ssize_t n = 0;
	int fd = open(t->log, O_RDONLY | O_CLOEXEC);
	const char *p;

	buf[0] = '\0';
	if (fd < 0)
		return;
	if (lseek(fd, -(off_t)(sizeof(all) - 1), SEEK_END) < 0)
		lseek(fd, 0, SEEK_SET);
	n = read(fd, all, sizeof(all) - 1);
	close(fd);
	if (n <= 0) {
		snprintf(buf, size, "(no output)");
		return;
	}
	all[n] = '\0';
	/* The last three lines. */
	p = all + n;
	for (int lines = 0; p > all && lines < 4; p--)
		if (p[-1] == '\n')
			lines++;
	snprintf(buf, size, "%s", *p ? p : "(no output)");
	for (char *c = buf; *c; c++)
		if (*c == '\n')
			*c = ' ';
}

/*
 * Whether a unix socket listens at @path (/proc/net/unix: the
 * __SO_ACCEPTCON flag, 0x10000).  The socket file exists from bind() on,
 * and a connect() before listen() is refused.
 */
static bool listening(const char *path)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/net/unix", "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long flags;
		char sock_path[256];

		if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %255s", &flags,
			   sock_path) == 2 &&
		    !strcmp(sock_path, path) && (flags & 0x10000))
			found = true;
	}
	fclose(f);
	return found;
}

/*
 * Whether testpmd has started forwarding: its port (and so the socket)
 * is up before that, and starting to forward first flushes the receive
 * queues, dropping uncounted what a fast VMM already sent.  testpmd prints
 * its forwarding configuration right after that flush.
 */
static bool forwarding(const struct vmm_testpmd *t)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(t->log, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, "packet forwarding - ports=") != NULL;
	fclose(f);
	return found;
}

int vmm_testpmd_start(struct vmm_testpmd *t, const char *bin, unsigned pairs,
		      bool macswap, char *err, size_t err_size)
{
	char tmpl[] = "/tmp/vuiso-vmm-testpmd.XXXXXX";
	int pipefd[2], log_fd;
	double deadline;

	memset(t, 0, sizeof(*t));
	t->in_fd = -1;
	if (!mkdtemp(tmpl)) {
		snprintf(err, err_size, "mkdtemp: %s", strerror(errno));
		return -errno;
	}
	snprintf(t->dir, sizeof(t->dir), "%s", tmpl);
	snprintf(t->sock, sizeof(t->sock), "%s/net.sock", t->dir);
	snprintf(t->log, sizeof(t->log), "%s/testpmd.log", t->dir);
	log_fd = open(t->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (log_fd < 0 || pipe2(pipefd, O_CLOEXEC) < 0) {
		snprintf(err, err_size, "%s: %s", t->log, strerror(errno));
		if (log_fd >= 0)
			close(log_fd);
		vmm_testpmd_stop(t, NULL);
		return -EIO;
	}
	t->parent = getpid();
	snprintf(t->prefix, sizeof(t->prefix), "vuiso-vmm-%d", (int)t->parent);
	t->pid = fork();
	if (t->pid == 0)
		child(t, bin, pairs, macswap, pipefd[0], log_fd);
	close(pipefd[0]);
	close(log_fd);
	if (t->pid < 0) {
		snprintf(err, err_size, "fork: %s", strerror(errno));
		close(pipefd[1]);
		t->pid = 0;
		vmm_testpmd_stop(t, NULL);
		return -EIO;
	}
	t->in_fd = pipefd[1];

	/* Wait until it listens and forwards; a testpmd that exits first
	 * says why. */
	deadline = vmm_now() + START_TIMEOUT_S;
	for (;;) {
		struct stat st;
		int status;

		if (stat(t->sock, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    listening(t->sock) && forwarding(t))
			break;
		if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
			char tail[512];

			t->pid = 0;
			log_tail(t, tail, sizeof(tail));
			snprintf(err, err_size,
				 "%s exited (status %d) before it created its "
				 "socket: %s",
				 bin,
				 WIFEXITED(status) ? WEXITSTATUS(status)
						   : 128 + WTERMSIG(status),
				 tail);
			vmm_testpmd_stop(t, NULL);
			return -EIO;
		}
		if (vmm_now() > deadline) {
			snprintf(err, err_size,
				 "%s created no socket within %d s (log: %s)",
				 bin, START_TIMEOUT_S, t->log);
			vmm_testpmd_stop(t, NULL);
			return -ETIMEDOUT;
		}
		usleep(50000);
	}
	return 0;
}

/*
 * testpmd's "Forward statistics for port 0" block, printed when it stops:
 * RX-dropped (what its port could not take from the VMM) plus TX-dropped
 * (what it could not give back: no room in the receive ring).
 */
static int parse_counters(const struct vmm_testpmd *t,
			  struct vmm_testpmd_counters *c)
{
	char line[512];
	bool in_port = false, found = false;
	FILE *f = fopen(t->log, "r");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long pk, dr;

		if (strstr(line, "Forward statistics for port 0")) {
			in_port = true;
			continue;
		}
		if (!in_port)
			continue;
		if (sscanf(line, " RX-packets: %llu RX-dropped: %llu", &pk,
			   &dr) == 2) {
			c->rx_packets = pk;
			c->rx_dropped = dr;
			found = true;
		} else if (sscanf(line, " TX-packets: %llu TX-dropped: %llu",
				  &pk, &dr) == 2) {
			c->tx_packets = pk;
			c->tx_dropped = dr;
			break;
		}
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

int vmm_testpmd_stop(struct vmm_testpmd *t, struct vmm_testpmd_counters *c)
{
	int ret = 0;

	if (t->pid > 0) {
		double deadline = vmm_now() + STOP_TIMEOUT_S;
		int status;
		pid_t r;

		/* The newline testpmd waits for: stop, print, exit. */
		if (t->in_fd >= 0 && write(t->in_fd, "\n", 1) != 1)
			kill(t->pid, SIGTERM);
		while ((r = waitpid(t->pid, &status, WNOHANG)) == 0 &&
		       vmm_now() < deadline)
			usleep(20000);
		if (r == 0) {
			kill(t->pid, SIGKILL);
			waitpid(t->pid, &status, 0);
			ret = -ETIMEDOUT;
		} else if (r < 0) {
			ret = -errno;
		} else if (WIFSIGNALED(status)) {
			fprintf(stderr,
				"vmm: dpdk-testpmd (pid %d) was killed by "
				"signal %d\n",
				(int)t->pid, WTERMSIG(status));
			ret = -ECHILD;
		} else if (WEXITSTATUS(status)) {
			fprintf(stderr,
				"vmm: dpdk-testpmd (pid %d) exited with status "
				"%d\n",
				(int)t->pid, WEXITSTATUS(status));
			ret = -ECHILD;
		}
		t->pid = 0;
		if (c && ret == 0)
			ret = parse_counters(t, c);
	}
	if (t->in_fd >= 0)
		close(t->in_fd);
	t->in_fd = -1;
	if (t->dir[0]) {
		if (ret < 0 && c) {
			char tail[512];

			log_tail(t, tail, sizeof(tail));
			fprintf(stderr, "vmm: dpdk-testpmd's last words: %s\n",
				tail);
		}
		unlink(t->log);
		unlink(t->sock);
		rmdir(t->dir);
		t->dir[0] = '\0';
	}
	if (t->prefix[0]) {
		/* EAL's run directory (root: /var/run/dpdk). */
		char run[PATH_MAX];
		const char *xdg = getenv("XDG_RUNTIME_DIR");

		snprintf(run, sizeof(run), "/var/run/dpdk/%s", t->prefix);
		rmdir(run);
		if (xdg) {
			snprintf(run, sizeof(run), "%s/dpdk/%s", xdg,
				 t->prefix);
			rmdir(run);
		}
		t->prefix[0] = '\0';
	}
	return ret;
}

bool vmm_testpmd_alive(struct vmm_testpmd *t, int *status)
{
	if (t->pid <= 0)
		return false;
	if (waitpid(t->pid, status, WNOHANG) == t->pid) {
		t->pid = 0;
		return false;
	}
	return true;
}

double vmm_testpmd_cpu_seconds(const struct vmm_testpmd *t)
{
	char path[64], buf[1024], *p;
	unsigned long long utime, stime;
	ssize_t n;
	int fd;

	if (t->pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)t->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* Fields 14 and 15, counted after the command name's ')'. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2,
			 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
			 "%llu",
			 &utime, &stime) != 2)
		return -1;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}
