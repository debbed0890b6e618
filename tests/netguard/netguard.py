"""Refuse every network connection that would leave this machine.

Installed for the whole test session by conftest.py, and in every subprocess the tests start (through
``sitecustomize.py`` beside this file, put on PYTHONPATH by the ``cli_env`` fixture). A refused attempt is
recorded and raises, so a library that phones home fails the test that triggered it.
"""

from __future__ import annotations

import ipaddress
import os
import socket

ATTEMPTS: list[str] = []
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _is_local(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]")
    if host in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


class NetworkBlocked(OSError):
    pass


def _refuse(what: str):
    ATTEMPTS.append(what)
    log = os.environ.get("VIGNETTE_NETGUARD_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(what + "\n")
    raise NetworkBlocked(f"network access blocked in tests: {what}")


def install() -> None:
    if getattr(socket, "_vignette_guarded", False):
        return
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            _refuse(f"connect {address!r}")
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            _refuse(f"connect_ex {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_local(host):
            _refuse(f"getaddrinfo {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
    socket._vignette_guarded = True
