#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the hand-made seed inputs of the fuzz corpus.

Each seed drives one harness to one validation branch of the library (or one
legal corner), so that the corpus replay alone reaches every check, and the
fuzzer starts from there.  The input formats are documented at the top of
fuzz_guest.c, fuzz_backend.c and fuzz_model.c; every input starts with the
fixture byte and the layout byte (hdr()).  Seeds are named seed-*, with a
suffix for the layout pair when it is not split/split: -guest-packed,
-shadow-packed, -packed-packed; inputs found by libFuzzer keep their hash
names.

    python3 fuzz/seeds.py          # (re)write fuzz/corpus/*/seed-*
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

GPA_BASE = 0x100000
RAM = 64 * 1024                 # per range (fz_opts)
RAM1 = GPA_BASE + RAM           # second range
RAM_END = GPA_BASE + 2 * RAM
HEAP = 0x102000                 # first heap byte for queue sizes <= 64
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


SPLIT, GUEST_PACKED, SHADOW_PACKED, BOTH_PACKED = 0, 1, 2, 3
P_AVAIL, P_USED = 1 << 7, 1 << 15


def hdr(qlog=4, gev=False, bev=False, indirect=False, budget=0,
        layout=SPLIT):
    """The fixture byte and the layout byte (bit 0 guest ring packed, bit 1
    shadow ring packed)."""
    return bytes([qlog | gev << 3 | bev << 4 | indirect << 5 | budget << 6,
                  layout])


def relayout(seeds, layout, suffix):
    """The same inputs with another layout byte."""
    return {k + suffix: v[:1] + bytes([layout]) + v[2:]
            for k, v in seeds.items()}


def u8(v):
    return struct.pack('<B', v & 0xff)


def u16(v):
    return struct.pack('<H', v & 0xffff)


def u32(v):
    return struct.pack('<I', v & 0xffffffff)


def u64(v):
    return struct.pack('<Q', v & 0xffffffffffffffff)


# ---- guest harness --------------------------------------------------------

class G:
    """fuzz_guest.c operations; addresses go through its fz_addr/fz_len."""

    @staticmethod
    def gpa(g):          # selector 0: GPA_BASE - 4096 + a % (span + 8192)
        return g - GPA_BASE + 4096

    @staticmethod
    def itab(off=0):     # selector 1: the indirect area
        return (1 << 62) | off

    @staticmethod
    def raw(a):          # selector 3: the raw value (top bits 11)
        assert a >> 62 == 3
        return a

    @staticmethod
    def ln(n):           # small lengths pass through; else the raw value
        assert n < 0x1000 or n >> 30 >= 2
        return n

    @staticmethod
    def desc(i, addr, ln, flags=0, nxt=0):
        return u8(0) + u8(i) + u64(addr) + u32(ln) + u16(flags) + u16(nxt)

    @staticmethod
    def itabd(i, addr, ln, flags=0, nxt=0):
        return u8(1) + u8(i) + u64(addr) + u32(ln) + u16(flags) + u16(nxt)

    avail = staticmethod(lambda head: u8(2) + u16(head))
    pub = u8(3)
    jump = staticmethod(lambda d: u8(4) + u16(d))
    kick = u8(5)
    serve = staticmethod(lambda sel=0, raw=0: u8(6) + u8(sel) +
                         (u32(raw) if sel & 3 == 3 else b''))
    stop = u8(7)
    reset = u8(8)
    poke = staticmethod(lambda at, data: u8(9) + u32(at) + u8(len(data)) + data)
    rings = staticmethod(lambda d, a, u, qlog, ai=0, ui=0:
                         u8(10) + u64(d) + u64(a) + u64(u) + u8(qlog) +
                         u16(ai) + u16(ui))


class GP:
    """fuzz_guest.c operations on a packed guest ring."""
    pdesc = staticmethod(lambda i, addr, ln, id_, flags, sel=1:
                         u8(0) + u8(i) + u8(sel) + u64(addr) + u32(ln) +
                         u16(id_) + u16(flags))
    itabd = staticmethod(lambda i, addr, ln, flags=0:
                         u8(1) + u8(i) + u64(addr) + u32(ln) + u16(0) +
                         u16(flags))
    avail = staticmethod(lambda n: u8(2) + u8(n))

    @staticmethod
    def chain(id_, descs):   # descs: (addr, len, fl); fl bit 3 flips NEXT
        out = u8(3) + u8(len(descs) - 1) + u16(id_)
        for addr, ln, fl in descs:
            out += u64(addr) + u32(ln) + u8(fl)
        return out

    jump = staticmethod(lambda d: u8(4) + u16(d))
    event = staticmethod(lambda ow, fl: u8(11) + u16(ow) + u16(fl))


def one(d, head=0):
    """Make head available, publish, kick, let the back-end serve."""
    return d + G.avail(head) + G.pub + G.kick + G.serve()


def guest_seeds():
    s = {}
    gp, it = G.gpa, G.itab
    rd = G.desc(0, gp(0x104000), 64, F_NEXT, 1)
    wr = G.desc(1, gp(0x105000), 128, F_WRITE, 0)
    s['valid-direct'] = hdr() + one(rd + wr)
    s['valid-direct-evidx-budget'] = hdr(6, True, True, False, 1) + \
        rd + wr + G.avail(0) + G.avail(0) + G.pub + G.kick + G.kick + \
        G.serve(1) + G.serve(2) + G.kick + G.serve(0)
    tab = (G.itabd(0, gp(0x104000), 16, F_NEXT, 1) +
           G.itabd(1, gp(0x105000), 100, F_WRITE, 0))
    s['valid-indirect'] = hdr(indirect=True) + tab + one(
        G.desc(0, it(0), 32, F_INDIRECT))
    s['valid-straddle-ram-ranges'] = hdr() + one(
        G.desc(0, gp(RAM1 - 32), 64, F_WRITE))
    s['valid-used-len-larger'] = hdr() + rd + wr + G.avail(0) + G.pub + \
        G.kick + G.serve(3, 0xffffffff)
    s['loop-direct'] = hdr() + one(
        G.desc(0, gp(0x104000), 8, F_NEXT, 1) +
        G.desc(1, gp(0x104100), 8, F_NEXT, 0))
    s['loop-indirect'] = hdr(indirect=True) + \
        G.itabd(0, gp(0x104000), 8, F_NEXT, 1) + \
        G.itabd(1, gp(0x104100), 8, F_NEXT, 0) + one(
            G.desc(0, it(0), 32, F_INDIRECT))
    s['indirect-nested'] = hdr(indirect=True) + \
        G.itabd(0, it(0x100), 16, F_INDIRECT) + one(
            G.desc(0, it(0), 16, F_INDIRECT))
    s['indirect-with-next'] = hdr(indirect=True) + tab + one(
        G.desc(0, it(0), 32, F_INDIRECT | F_NEXT, 1) +
        G.desc(1, gp(0x104000), 8))
    s['indirect-len-not-16'] = hdr(indirect=True) + tab + one(
        G.desc(0, it(0), 24, F_INDIRECT))
    s['indirect-len-over-queue'] = hdr(indirect=True) + tab + one(
        G.desc(0, it(0), 16 * 17, F_INDIRECT))
    s['indirect-len-zero'] = hdr(indirect=True) + tab + one(
        G.desc(0, it(0), 0, F_INDIRECT))
    s['indirect-not-negotiated'] = hdr() + tab + one(
        G.desc(0, it(0), 32, F_INDIRECT))
    s['indirect-table-unmapped'] = hdr(indirect=True) + one(
        G.desc(0, G.raw(0xc000000000000010), 32, F_INDIRECT))
    chain = b''.join(G.desc(i, gp(0x104000 + 64 * i), 8, F_NEXT, i + 1)
                     for i in range(15))
    full = b''.join(G.itabd(i, gp(0x106000 + 64 * i), 8,
                            F_NEXT if i < 15 else 0, i + 1)
                    for i in range(16))
    s['chain-longer-than-queue'] = hdr(indirect=True) + chain + full + one(
        G.desc(15, it(0), 256, F_INDIRECT), 0)
    s['head-out-of-range'] = hdr() + rd + wr + one(b'', 16)
    s['next-out-of-range'] = hdr() + one(
        G.desc(0, gp(0x104000), 8, F_NEXT, 16))
    s['next-out-of-range-indirect'] = hdr(indirect=True) + \
        G.itabd(0, gp(0x104000), 8, F_NEXT, 5) + one(
            G.desc(0, it(0), 32, F_INDIRECT))
    s['avail-index-jump'] = hdr() + rd + wr + G.jump(17) + G.kick
    s['addr-len-overflow'] = hdr() + one(
        G.desc(0, G.raw(0xffffffffffffff00), 0x200))
    s['straddle-unmapped-readable'] = hdr() + one(
        G.desc(0, gp(RAM_END - 32), 64))
    s['straddle-unmapped-writable'] = hdr() + one(
        G.desc(0, gp(RAM_END - 32), 64, F_WRITE))
    s['below-ram'] = hdr() + one(G.desc(0, gp(GPA_BASE - 16), 32))
    s['readable-after-writable'] = hdr() + one(
        G.desc(0, gp(0x104000), 8, F_WRITE | F_NEXT, 1) +
        G.desc(1, gp(0x104100), 8))
    s['zero-length'] = hdr() + one(G.desc(0, gp(0x104000), 0))
    s['total-over-4gib'] = hdr() + one(
        G.desc(0, gp(0x104000), G.ln(0xffff0000), F_NEXT, 1) +
        G.desc(1, gp(0x104000), G.ln(0xffff0000)))
    s['larger-than-pool'] = hdr() + one(
        G.desc(0, gp(0x104000), (1 << 30) | 0x20000, F_WRITE))
    s['stop-restart-reset'] = hdr() + rd + wr + G.avail(0) + G.pub + \
        G.kick + G.stop + G.serve() + G.stop + G.avail(0) + G.pub + \
        G.kick + G.reset + rd + wr + one(b'')
    # Ring addresses and size are guest input too (virtio-pci config).
    s['rings-smaller-queue'] = hdr() + G.rings(
        gp(0x100000), gp(0x100100), gp(0x101000), 3) + one(rd + wr)
    s['rings-misaligned'] = hdr() + G.rings(
        gp(0x100008), gp(0x100100), gp(0x101000), 4) + one(rd + wr)
    s['rings-unmapped'] = hdr() + G.rings(
        gp(0x100000), gp(0x100100), G.raw(0xc000000000000000), 4) + \
        one(rd + wr)
    s['rings-straddle-ram-end'] = hdr() + G.rings(
        gp(0x100000), gp(0x100100), gp(RAM_END - 64), 4) + one(rd + wr)
    s['rings-size-over-max'] = hdr() + G.rings(
        gp(0x100000), gp(0x100100), gp(0x101000), 8) + one(rd + wr)
    s['rings-overlap-start-index'] = hdr() + G.rings(
        gp(0x100000), gp(0x100000), gp(0x100000), 4, 0xfff0, 7) + \
        one(rd + wr)
    s['poke-suppression'] = hdr(4, True, True) + \
        G.poke(0x100, b'\x01\x00') + rd + wr + one(b'') + \
        G.poke(0x100 + 4 + 32, b'\x05\x00') + one(b'')
    # A split guest on a packed shadow ring: the same inputs.
    s.update(relayout(dict(s), SHADOW_PACKED, '-shadow-packed'))
    s.update(guest_packed_seeds(GUEST_PACKED, '-guest-packed'))
    s.update(guest_packed_seeds(BOTH_PACKED, '-packed-packed'))
    return s


def guest_packed_seeds(layout, sfx):
    """A packed guest ring: one seed per check of vring_packed.c."""
    s = {}
    gp, it = G.gpa, G.itab
    P = GP
    rd, wr = (gp(0x104000), 64, 0), (gp(0x105000), 128, F_WRITE)
    serve = G.kick + G.serve()

    def h(*a, **kw):
        return hdr(*a, layout=layout, **kw)
    s['valid-chain'] = h() + P.chain(0, [rd, wr]) + serve
    # Queue of 2: many laps, both wrap counters, with EVENT_IDX.
    s['valid-laps-evidx'] = h(qlog=1, gev=True, bev=True) + b''.join(
        P.chain(i & 1, [rd, wr][: 1 + (i % 2)]) + serve for i in range(9))
    s['valid-laps-budget'] = h(qlog=2, budget=1) + b''.join(
        P.chain(i % 4, [rd]) for i in range(3)) + G.kick + G.kick + \
        G.serve(1) + G.kick + G.serve(2) + G.serve(3, 0xffffffff)
    tab = P.itabd(0, gp(0x104000), 16) + P.itabd(1, gp(0x105000), 100,
                                                 F_WRITE)
    s['valid-indirect'] = h(indirect=True) + tab + \
        P.chain(3, [(it(0), 32, F_INDIRECT)]) + serve
    s['valid-raw-desc-avail'] = h() + \
        P.pdesc(0, gp(0x104000), 8, 1, F_NEXT, 0) + \
        P.pdesc(1, gp(0x105000), 8, 1, F_WRITE, 0) + P.avail(2) + serve
    s['valid-event-suppression'] = h(gev=True, bev=True) + \
        P.event(0x8001, 2) + P.chain(0, [rd]) + serve + \
        P.event(0, 1) + P.chain(1, [rd]) + serve + \
        P.event(0, 0) + P.chain(2, [rd]) + serve
    s['not-available-in-chain'] = h() + \
        P.pdesc(1, gp(0x105000), 8, 0, 0, 2) + \
        P.pdesc(0, gp(0x104000), 8, 0, F_NEXT) + G.kick
    s['wrong-wrap-ignored'] = h() + P.jump(16) + P.chain(0, [rd]) + \
        serve + P.jump(16) + P.chain(0, [rd]) + serve
    s['indirect-in-chain'] = h(indirect=True) + tab + P.chain(
        0, [rd, (it(0), 32, F_INDIRECT)]) + G.kick
    s['indirect-with-next'] = h(indirect=True) + tab + P.chain(
        0, [(it(0), 32, F_INDIRECT | 8)]) + G.kick
    s['indirect-not-negotiated'] = h() + tab + P.chain(
        0, [(it(0), 32, F_INDIRECT)]) + G.kick
    s['indirect-len-not-16'] = h(indirect=True) + tab + P.chain(
        0, [(it(0), 24, F_INDIRECT)]) + G.kick
    s['indirect-len-over-queue'] = h(indirect=True) + tab + P.chain(
        0, [(it(0), 16 * 17, F_INDIRECT)]) + G.kick
    s['indirect-nested'] = h(indirect=True) + \
        P.itabd(0, it(0x100), 16, F_INDIRECT) + P.chain(
            0, [(it(0), 16, F_INDIRECT)]) + G.kick
    s['indirect-table-unmapped'] = h(indirect=True) + P.chain(
        0, [(G.raw(0xc000000000000010), 32, F_INDIRECT)]) + G.kick
    s['indirect-zero-entry'] = h(indirect=True) + \
        P.itabd(0, gp(0x104000), 0) + P.chain(
            0, [(it(0), 16, F_INDIRECT)]) + G.kick
    s['chain-longer-than-ring'] = h(qlog=2) + P.chain(
        0, [rd, rd, rd, (gp(0x104000), 64, 8)]) + G.kick
    s['buffer-id-out-of-range'] = h() + P.chain(16, [rd]) + G.kick
    s['buffer-id-reused-in-flight'] = h() + P.chain(5, [rd]) + G.kick + \
        P.chain(5, [rd]) + G.kick
    s['overlaps-in-flight'] = h(qlog=2) + P.chain(0, [rd, rd, wr]) + \
        G.kick + P.chain(1, [rd, wr]) + G.kick
    s['zero-length'] = h() + P.chain(0, [(gp(0x104000), 0, 0)]) + G.kick
    s['addr-len-overflow'] = h() + P.chain(
        0, [(G.raw(0xffffffffffffff00), 0x200, 0)]) + G.kick
    s['readable-after-writable'] = h() + P.chain(
        0, [wr, rd]) + G.kick
    s['straddle-unmapped-writable'] = h() + P.chain(
        0, [(gp(RAM_END - 32), 64, F_WRITE)]) + G.kick
    s['larger-than-pool'] = h() + P.chain(
        0, [(gp(0x104000), (1 << 30) | 0x20000, F_WRITE)]) + G.kick
    s['stop-restart-reset'] = h() + P.chain(0, [rd, wr]) + G.kick + \
        G.stop + G.serve() + G.stop + P.chain(1, [rd, wr]) + G.kick + \
        G.reset + P.chain(0, [rd, wr]) + serve
    s['rings-misaligned'] = h() + G.rings(
        gp(0x100008), gp(0x100100), gp(0x101000), 4) + \
        P.chain(0, [rd]) + serve
    s['rings-start-index'] = h() + G.rings(
        gp(0x100000), gp(0x101000), gp(0x101100), 4, 0x8003, 0x8001) + \
        P.chain(0, [rd]) + serve
    s['rings-bad-start-index'] = h() + G.rings(
        gp(0x100000), gp(0x101000), gp(0x101100), 4, 0x0003, 0x8003) + \
        P.chain(0, [rd]) + serve
    return {k + sfx: v for k, v in s.items()}


# ---- back-end harness -----------------------------------------------------

class B:
    @staticmethod
    def add(*segs):      # segs: (len, writable)
        out = u8(0) + u8(len(segs) - 1)
        for ln, w in segs:
            out += u16(ln - 1) + u8(w)
        return out

    used = staticmethod(lambda sel, i, ln: u8(1) + u8(sel) + u32(i) + u32(ln))
    pub = u8(2)
    jump = staticmethod(lambda d: u8(3) + u16(d))
    call = u8(4)
    desc = staticmethod(lambda i, b: u8(5) + u8(i) + b.ljust(16, b'\xff'))
    ring = staticmethod(lambda off, b: u8(6) + u16(off) + u8(len(b)) + b)
    pool = staticmethod(lambda off, b: u8(7) + u32(off) + u8(len(b)) + b)
    stop = u8(8)
    reset = u8(9)
    kick = u8(10)
    good = staticmethod(lambda sel, ln: u8(11) + u8(sel) + u32(ln))
    # packed shadow ring only
    pused = staticmethod(lambda rel, i, ln, fl=0:
                         u8(12) + u8(rel) + u16(i) + u32(ln) + u16(fl))
    event = staticmethod(lambda ow, fl: u8(13) + u16(ow) + u16(fl))


def backend_seeds():
    s = {}
    req = B.add((16, 0), (512, 1), (1, 1))
    s['valid-complete'] = hdr() + req + B.good(0, 513)
    s['valid-complete-indirect-evidx'] = hdr(4, True, True, True) + \
        B.add((16, 0), (100, 1), (1, 1)) + B.add((8, 1)) + \
        B.good(0, 101) + B.good(0, 8)
    s['valid-used-len-larger'] = hdr() + req + \
        B.used(1, 0, 0xffffffff) + B.pub + B.call
    s['valid-out-of-order'] = hdr(budget=1) + req + req + req + \
        B.good(2, 1) + B.good(0, 5) + B.good(0, 513)
    s['used-id-out-of-range'] = hdr() + req + B.used(0, 1000, 0) + \
        B.pub + B.call
    s['used-id-never-available'] = hdr() + req + B.used(2, 9, 0) + \
        B.pub + B.call
    # Twice needs two requests in flight, or the index check fires first.
    s['used-id-twice'] = hdr() + req + req + B.used(1, 0, 1) + \
        B.used(1, 0, 1) + B.pub + B.call
    s['used-id-twice-later-call'] = hdr() + req + req + B.good(0, 1) + \
        B.used(2, 0, 1) + B.pub + B.call
    s['used-index-jump'] = hdr() + req + B.jump(5) + B.call
    s['used-index-jump-no-inflight'] = hdr() + B.jump(1) + B.call
    s['scribble-shadow-desc'] = hdr() + req + \
        B.desc(0, u64(0xdeadbeef) + u32(0xffffffff)) + B.good(0, 513)
    s['scribble-shadow-avail'] = hdr() + req + \
        B.ring(16 * 16, b'\xff\xff\x30\x00\x05\x00') + req + B.good(0, 3)
    s['scribble-pool'] = hdr() + req + B.pool(0x2000, b'\x41' * 64) + \
        B.good(0, 513)
    s['never-completes-stop-times-out'] = hdr() + req + B.stop + \
        B.good(0, 513) + B.stop + req + B.good(0, 1)
    s['reset-in-flight'] = hdr() + req + req + B.reset + req + \
        B.good(0, 513)
    s['backpressure'] = hdr(budget=2) + b''.join(
        B.add((2048, 1), (2048, 1), (2048, 1), (2048, 1))
        for _ in range(10)) + b''.join(B.good(0, 8192) for _ in range(10))
    # A packed guest on a split shadow ring: the same inputs.
    s.update(relayout(dict(s), GUEST_PACKED, '-guest-packed'))
    s.update(backend_packed_seeds(SHADOW_PACKED, '-shadow-packed'))
    s.update(backend_packed_seeds(BOTH_PACKED, '-packed-packed'))
    return s


def backend_packed_seeds(layout, sfx):
    """A packed shadow ring: every used-side check, and the skips."""
    s = {}
    req = B.add((16, 0), (512, 1), (1, 1))
    one = B.add((64, 1))

    def h(*a, **kw):
        return hdr(*a, layout=layout, **kw)
    s['valid-complete'] = h() + req + B.good(0, 513)
    s['valid-complete-indirect-evidx'] = h(4, True, True, True) + \
        B.add((16, 0), (100, 1), (1, 1)) + one + B.event(0x8003, 2) + \
        B.good(0, 101) + B.good(0, 8) + one + B.event(0, 1) + one + \
        B.good(0, 64) + B.good(0, 64)
    s['valid-out-of-order'] = h(budget=1) + req + req + req + \
        B.good(2, 1) + B.good(0, 5) + B.good(0, 513)
    s['valid-laps'] = h(qlog=2, budget=2) + b''.join(
        req + B.good(0, 513) + one + B.good(0, 64) for _ in range(5))
    s['valid-used-len-larger'] = h() + req + \
        B.used(1, 0, 0xffffffff) + B.call
    s['valid-raw-used-skip'] = h(qlog=2) + one + one + \
        B.pused(0, 1, 9) + B.call + B.pused(0, 0, 9) + B.call
    s['used-id-out-of-range'] = h() + req + B.pused(0, 1000, 0) + B.call
    s['used-id-never-available'] = h() + req + B.pused(0, 9, 0) + B.call
    s['used-id-twice'] = h(qlog=2) + one + one + B.pused(0, 0, 1) + \
        B.pused(1, 0, 1) + B.call
    s['used-id-twice-later-call'] = h() + req + req + B.good(0, 1) + \
        B.pused(0, 0, 1) + B.call
    s['used-no-inflight'] = h() + B.pused(0, 0, 1) + B.call
    s['used-wrong-wrap-ignored'] = h() + req + \
        B.pused(0x80, 0, 1, P_USED) + B.call + B.good(0, 513)
    s['used-skipped-position'] = h() + req + req + B.jump(1) + \
        B.used(1, 0, 1) + B.call + B.stop
    s['scribble-shadow-desc'] = h() + req + \
        B.desc(0, u64(0xdeadbeef) + u32(0xffffffff)) + B.good(0, 513)
    s['scribble-event-areas'] = h(bev=True) + req + \
        B.ring(16 * 16 + 64, b'\x03\x80\x02\x00') + req + \
        B.ring(16 * 16, b'\xff\xff\xff\xff') + B.good(0, 3)
    s['never-completes-stop-times-out'] = h() + req + B.stop + \
        B.good(0, 513) + B.stop + req + B.good(0, 1)
    s['stop-with-bogus-after-last'] = h(qlog=2) + one + \
        B.used(1, 0, 1) + B.pused(1, 0, 1) + B.stop
    s['reset-in-flight'] = h() + req + req + B.reset + req + \
        B.good(0, 513)
    s['backpressure'] = h(budget=2) + b''.join(
        B.add((2048, 1), (2048, 1), (2048, 1), (2048, 1))
        for _ in range(10)) + b''.join(B.good(0, 8192) for _ in range(10))
    return {k + sfx: v for k, v in s.items()}


# ---- model harness --------------------------------------------------------

class M:
    @staticmethod
    def add(segs, kick=True):
        out = u8(0) + u8(len(segs) - 1)
        for ln, w in segs:
            out += u16(ln - 1) + u8(w)
        return out + u8(kick)

    rewrite = staticmethod(lambda sel, k, addr, ln, fl:
                           u8(1) + u8(sel) + u8(k) + u64(addr) + u32(ln) +
                           u16(fl))
    complete = staticmethod(lambda sel, lensel, ln=None:
                            u8(2) + u8(sel) + u8(lensel) +
                            (u16(ln) if lensel % 5 == 3 else
                             u32(ln) if lensel % 5 == 4 else b''))
    bogus = staticmethod(lambda i: u8(3) + u8(i))
    call = u8(4)
    kick = u8(5)
    map = staticmethod(lambda how: u8(6) + u8(how))
    stop = u8(7)
    reset = u8(8)
    log = u8(9)


def model_seeds():
    s = {}
    req = [(16, 0), (600, 1), (1, 1)]
    big = [(2048, 1)] * 4
    s['valid-roundtrip'] = hdr() + M.add(req) + M.complete(0, 0) + M.call
    s['valid-lengths'] = hdr(6, True, True, True, 2) + M.add(req) + \
        M.add([(100, 1)]) + M.add(req) + M.complete(0, 1) + \
        M.complete(0, 2) + M.complete(0, 3, 999) + M.call + \
        M.add(req) + M.complete(0, 4, 0xffffffff) + M.call
    s['rewrite-before-pop'] = hdr() + M.add(req, False) + \
        M.rewrite(0, 1, 0x4141, 7, 0) + M.kick + M.complete(0, 0) + M.call
    s['rewrite-after-pop'] = hdr(indirect=True) + M.add(req) + \
        M.rewrite(0, 1, 0x104000, 4096, 0) + \
        M.rewrite(0, 0, 0xffffffffffff0000, 0, 7) + \
        M.complete(0, 0) + M.call
    s['complete-twice'] = hdr() + M.add(req) + M.add(req) + \
        M.complete(0, 0x82) + M.bogus(0) + M.call
    s['complete-never-available'] = hdr() + M.add(req) + M.bogus(9) + \
        M.call
    s['used-index-jump'] = hdr() + M.bogus(3) + M.call
    s['call-without-completing'] = hdr() + M.add(req) + M.call + M.call + \
        M.complete(0, 0) + M.call
    s['map-same-and-moved'] = hdr() + M.add(req) + M.add(big) + \
        M.add(big) + M.add(big) + M.add(big) + M.add(big) + M.map(0) + \
        M.map(1) + M.map(5) + M.complete(0, 0) + M.complete(0, 0) + \
        M.call + M.complete(0, 0) + M.complete(0, 0) + M.complete(0, 0) + \
        M.complete(0, 0) + M.call
    # The eighth 8 KiB request lies in range 1; unplug it in flight.
    fill = b''.join(M.add(big) for _ in range(8))
    s['unplug-in-flight'] = hdr(6) + fill + M.map(2) + \
        b''.join(M.complete(0, 0) for _ in range(8)) + M.call
    s['unplug-pending'] = hdr(6) + b''.join(
        M.add(big, False) for _ in range(8)) + M.map(2) + M.kick
    s['unplug-replug'] = hdr(6) + fill + M.map(2) + M.map(3) + \
        b''.join(M.complete(0, 0) for _ in range(8)) + M.call
    s['stop-timeout-then-clean'] = hdr() + M.add(req) + M.add(req) + \
        M.stop + M.complete(0, 0) + M.stop + M.add(req, False) + M.kick + \
        M.complete(0, 0) + M.stop + M.kick + M.complete(0, 0) + M.call
    s['reset-in-flight'] = hdr() + M.add(req) + M.add(req) + \
        M.complete(0, 0) + M.reset + M.add(req) + M.complete(0, 0) + M.call
    s['backpressure'] = hdr(6, False, False, False, 1) + b''.join(
        M.add(big) for _ in range(12)) + b''.join(
        M.complete(0, 0x82) for _ in range(12))
    s['dirty-log'] = hdr(4, True, True, True) + M.log + M.add(req) + \
        M.add([(4000, 1)]) + M.complete(0, 0) + M.complete(0, 1) + M.call + \
        M.log + M.add(req) + M.complete(0, 0) + M.call
    s['rings-unplugged'] = hdr() + M.add(req) + M.map(4) + M.call
    s['rings-unplugged-kick'] = hdr() + M.map(4) + M.add(req)
    s['rings-unplugged-stop-replug'] = hdr() + M.map(4) + M.stop + \
        M.add(req) + M.complete(0, 0) + M.call
    # 128 one-block requests in flight, then all freed: more same-order
    # blocks than the pool's per-order cache holds.
    s['pool-cache-overflow'] = hdr(7) + b''.join(
        M.add([(64, 1)]) for _ in range(128)) + b''.join(
        M.complete(0, 0) for _ in range(128)) + M.call
    # Every model seed in the three other layout pairs.
    out = dict(s)
    out.update(relayout(s, GUEST_PACKED, '-guest-packed'))
    out.update(relayout(s, SHADOW_PACKED, '-shadow-packed'))
    out.update(relayout(s, BOTH_PACKED, '-packed-packed'))
    # Queue of 4, packed: many laps of both wrap counters, out of order.
    laps = b''.join(M.add([(16, 0), (600, 1)]) + M.add([(64, 1)]) +
                    M.complete(1, 0) + M.complete(0, 0) + M.call
                    for _ in range(6))
    for lay, sfx in ((GUEST_PACKED, '-guest-packed'),
                     (SHADOW_PACKED, '-shadow-packed'),
                     (BOTH_PACKED, '-packed-packed')):
        out['laps' + sfx] = hdr(2, True, True, layout=lay) + laps + \
            M.stop + laps
    return out


def main():
    for name, seeds in (('guest', guest_seeds()), ('backend', backend_seeds()),
                        ('model', model_seeds())):
        d = os.path.join(HERE, 'corpus', name)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.startswith('seed-'):
                os.unlink(os.path.join(d, f))
        for k, v in seeds.items():
            with open(os.path.join(d, 'seed-' + k), 'wb') as fp:
                fp.write(v)
        print(f'{name}: {len(seeds)} seeds')


if __name__ == '__main__':
    main()
