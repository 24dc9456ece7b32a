"""The phone's network policy, as a seccomp filter: no IP sockets at all.

A new network namespace already gives the phone no route anywhere, but a process can still
listen on the namespace's own loopback (``nc -l``). Android refuses ``socket(AF_INET*)`` with
EACCES to any process outside the ``inet`` group; the phone's processes get exactly that.
Unix sockets (the emulator's own channels) and netlink stay allowed. io_uring is refused
too, as it could open sockets without the ``socket`` system call. On x86-64 the x32 system
call numbers are refused wholesale so nothing slips past by another number.

The program is classic BPF (``struct sock_filter``), handed to bwrap with ``--seccomp FD``.
"""

from __future__ import annotations

import errno
import platform
import socket
import struct

# BPF opcodes
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_KILL_PROCESS = 0x80000000
# offsets in struct seccomp_data
_NR, _ARCH, _ARG0 = 0, 4, 16
X32_SYSCALL_BIT = 0x40000000

# arch: (AUDIT_ARCH, socket, io_uring_setup, io_uring_enter, io_uring_register)
_ARCHES = {
    "x86_64": (0xC000003E, 41, 425, 426, 427),
    "aarch64": (0xC00000B7, 198, 425, 426, 427),
}
DENIED_FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_PACKET)


class UnsupportedArch(RuntimeError):
    pass


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k & 0xFFFFFFFF)


def network_filter(machine: str | None = None) -> bytes:
    """The BPF program for this machine's architecture."""
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        raise UnsupportedArch(f"no seccomp policy for {machine}")
    audit_arch, nr_socket, *nr_uring = _ARCHES[machine]
    deny = SECCOMP_RET_ERRNO | errno.EACCES
    prog = [
        _insn(_LD_W_ABS, 0, 0, _ARCH),
        _insn(_JEQ_K, 1, 0, audit_arch),
        _insn(_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),  # a foreign ABI: never allowed
        _insn(_LD_W_ABS, 0, 0, _NR),
    ]
    if machine == "x86_64":
        prog += [_insn(_JGE_K, 0, 1, X32_SYSCALL_BIT), _insn(_RET_K, 0, 0, deny)]
    for nr in nr_uring:
        prog += [_insn(_JEQ_K, 0, 1, nr), _insn(_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS)]
    prog += [_insn(_JEQ_K, 1, 0, nr_socket), _insn(_RET_K, 0, 0, SECCOMP_RET_ALLOW)]
    # socket(domain, ...): refuse the IP families, allow the rest
    prog.append(_insn(_LD_W_ABS, 0, 0, _ARG0))
    for family in DENIED_FAMILIES:
        prog += [_insn(_JEQ_K, 0, 1, int(family)), _insn(_RET_K, 0, 0, deny)]
    prog.append(_insn(_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    return b"".join(prog)
