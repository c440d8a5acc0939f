"""Files over SFTP on a pooled connection: an upload lands whole or not at all, a fetch is capped.

An upload is written to a temporary name in the target's directory (so the rename stays on one filesystem), given
its mode, then renamed over the target. With overwrite that is posix-rename@openssh.com (rename(2): the target is
replaced atomically, readers see the old file or the new one). Without, it is SFTP's plain rename, which OpenSSH's
sftp-server performs as link(2) then unlink(2): link fails if the target exists, so a file created meanwhile by
someone else is never replaced, however the two race (the stat before the transfer only saves sending the bytes).
"""

from __future__ import annotations

import hashlib
import posixpath
import secrets
import stat
from collections.abc import Callable, Iterable
from types import TracebackType

import paramiko

from workers.ssh.channels import Connections, open_channel
from workers.ssh.connection import Connection
from workers.ssh.errors import SshError, Stopped
from workers.ssh.options import Endpoint

StopCheck = Callable[[], "str | None"]
READ_SIZE = 1024 * 1024
PREFETCH_REQUESTS = 64  # SFTP reads in flight (32 KiB each)
TEMPORARY_MODE = 0o600  # until the content is complete and the final mode is set
DEFAULT_MODE = 0o644  # a new file's, unless the upload gives one


class FileRefused(Exception):
    """The host refused the file operation (it exists, permission denied, no such directory...): str() says why."""


class Sftp:
    """One SFTP session (a channel slot while open) on the pool's connection to an endpoint; a context manager."""

    def __init__(self, pool: Connections, endpoint: Endpoint, timeout: float) -> None:
        self.pool, self.endpoint, self.timeout = pool, endpoint, timeout
        self.connection: Connection | None = None
        self.client: paramiko.SFTPClient | None = None

    def __enter__(self) -> Sftp:
        self.connection, self.client = open_channel(self.pool, self.endpoint, lambda c: c.sftp(self.timeout))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self.connection is not None and self.client is not None
        try:
            self.client.close()
        except (paramiko.SSHException, EOFError, OSError):
            pass  # the connection died under us; the pool replaces it on next use
        self.connection.release()
        if isinstance(exc, (paramiko.SSHException, EOFError, TimeoutError, ConnectionError)):
            raise self._lost(exc) from exc

    def _lost(self, exc: BaseException) -> SshError:
        if isinstance(exc, TimeoutError):
            return SshError("timeout", f"no answer from {self.endpoint}'s SFTP server within {self.timeout:g} s")
        assert self.connection is not None
        if not self.connection.is_connected:
            self.pool.discard(self.endpoint, self.connection)
        return SshError("lost", f"SFTP session to {self.endpoint} lost: {exc}")

    @property
    def sftp(self) -> paramiko.SFTPClient:
        assert self.client is not None, "use Sftp as a context manager"
        return self.client

    def _stat(self, path: str, follow: bool = True) -> paramiko.SFTPAttributes | None:
        """stat (follow: through a symlink) or lstat; None if there is nothing there."""
        try:
            return self.sftp.stat(path) if follow else self.sftp.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._refused("stat", path, exc) from exc

    def _refused(self, what: str, path: str, exc: OSError) -> BaseException:
        """The SFTP server's answer to a request as FileRefused; a timeout or a lost connection as it is."""
        if isinstance(exc, (TimeoutError, ConnectionError)):
            return exc
        reason = exc.strerror or (exc.args[0] if exc.args else "") or type(exc).__name__
        return FileRefused(f"{what} {path} on {self.endpoint} failed: {reason}")

    def upload(self, path: str, chunks: Iterable[bytes], mode: int | None, overwrite: bool, should_stop: StopCheck,
               on_temporary: Callable[[str], None] | None = None) -> int:
        """Put the chunks at `path` atomically, with `mode` (None: the replaced file's, else DEFAULT_MODE), which it
        answers; FileRefused if it exists (unless overwrite) or cannot be written, Stopped when should_stop() says so
        (nothing is left behind either way)."""
        found = self._stat(path, follow=False)  # a symlink there (even a dangling one) exists: rename replaces it
        if found is not None and stat.S_ISDIR(found.st_mode or 0):
            raise FileRefused(f"{path} is a directory on {self.endpoint}")
        if found is not None and not overwrite:
            raise FileRefused(f"{path} already exists on {self.endpoint} and overwrite is false: nothing was written")
        if mode is None:  # the replaced file's (a symlink's target's), else the default
            target = self._stat(path) if found is not None and stat.S_ISLNK(found.st_mode or 0) else found
            mode = stat.S_IMODE(target.st_mode or 0) if target is not None else DEFAULT_MODE
        directory, name = posixpath.split(path)
        temporary = posixpath.join(directory, f".{name}.wsexec-{secrets.token_hex(6)}")
        if on_temporary is not None:  # told before it exists, so that a worker outliving this one can remove it
            on_temporary(temporary)
        try:
            self._write(temporary, chunks, mode, should_stop)
            self._rename(temporary, path, overwrite)
        except BaseException:
            self._remove(temporary)
            raise
        return mode

    def _write(self, temporary: str, chunks: Iterable[bytes], mode: int, should_stop: StopCheck) -> None:
        try:
            remote = self.sftp.open(temporary, "wx")  # O_EXCL: never a file someone else made under that name
        except OSError as exc:
            raise self._refused("create", temporary, exc) from exc
        try:
            with remote:
                remote.chmod(TEMPORARY_MODE)
                remote.set_pipelined(True)
                for chunk in chunks:
                    remote.write(chunk)
                    reason = should_stop()
                    if reason:
                        raise Stopped(reason)
                remote.chmod(mode)
        except OSError as exc:  # the pipelined writes' failures surface by close at the latest
            raise self._refused("write", temporary, exc) from exc

    def _rename(self, temporary: str, path: str, overwrite: bool) -> None:
        try:
            if overwrite:
                self.sftp.posix_rename(temporary, path)
            else:
                self.sftp.rename(temporary, path)
        except OSError as exc:
            if not overwrite and self._stat(path, follow=False) is not None:
                raise FileRefused(f"{path} was created on {self.endpoint} while the upload ran, and overwrite is "
                                  "false: it was left as it is") from exc
            raise self._refused("rename to", path, exc) from exc

    def _remove(self, temporary: str) -> None:
        try:
            self.sftp.remove(temporary)
        except (OSError, paramiko.SSHException, EOFError):
            pass  # never created, or the session is gone (then so is the chance to clean up)

    def remove_left(self, temporary: str) -> str:
        """Remove the temporary file of an upload whose worker died; say how it went."""
        try:
            self.sftp.remove(temporary)
        except FileNotFoundError:
            return f"its temporary file {temporary} was already gone"
        except OSError as exc:
            return f"its temporary file {temporary} could not be removed: {exc}"
        return f"its temporary file {temporary} was removed"

    def fetch(self, path: str, cap: int, write: Callable[[int, bytes], None], should_stop: StopCheck
              ) -> tuple[int, str]:
        """Read the regular file at `path` into write(offset, data) a slice at a time: its size and sha256.
        FileRefused if it is missing, not a regular file or larger than `cap` bytes (checked as it is read too)."""
        found = self._stat(path)
        if found is None:
            raise FileRefused(f"{path} does not exist on {self.endpoint}")
        if not stat.S_ISREG(found.st_mode or 0):
            raise FileRefused(f"{path} is not a regular file on {self.endpoint}")
        too_large = f"{path} on {self.endpoint} is larger than WSEXEC_FETCH_MAX ({cap} bytes)"
        if (found.st_size or 0) > cap:
            raise FileRefused(f"{too_large}: {found.st_size} bytes")
        try:
            with self.sftp.open(path, "rb") as remote:
                remote.prefetch(found.st_size, max_concurrent_requests=PREFETCH_REQUESTS)
                size, digest = 0, hashlib.sha256()
                while data := remote.read(READ_SIZE):
                    if size + len(data) > cap:
                        raise FileRefused(f"{too_large}: it grew while it was read")
                    write(size, data)
                    size += len(data)
                    digest.update(data)
                    reason = should_stop()
                    if reason:
                        raise Stopped(reason)
        except OSError as exc:
            raise self._refused("read", path, exc) from exc
        return size, digest.hexdigest()
