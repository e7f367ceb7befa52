"""Commands on a real cluster's hosts over SSH (paramiko), one connection per host for a whole run."""
from __future__ import annotations

from common.errors import EdgeplaceError


class RemoteCommandFailed(EdgeplaceError):
    """A command ran on the host and exited non-zero; `stderr` is what it said."""

    def __init__(self, message: str, stderr: str):
        super().__init__(message)
        self.stderr = stderr


class SshSessions:
    """One paramiko connection per inventory host, opened on first use and kept for the whole run (WAN
    counters are read every few seconds); a broken one is reopened once."""

    def __init__(self, hostvars: dict[str, dict]):
        self.hostvars = hostvars
        self.clients: dict[str, object] = {}

    def run(self, host: str, command: str, timeout: float = 10.0) -> str:
        import paramiko
        hv = self.hostvars[host]
        for attempt in (1, 2):
            try:
                client = self.clients.get(host) or self._connect(hv, timeout)
                self.clients[host] = client
                _, stdout, stderr = client.exec_command(command, timeout=timeout)
                text, err = stdout.read().decode(), stderr.read().decode()
                if stdout.channel.recv_exit_status() != 0:
                    raise RemoteCommandFailed(f"{hv.get('ansible_host')}: `{command}` failed: {err.strip()}",
                                              err.strip())
                return text
            except (OSError, paramiko.SSHException) as exc:
                self._drop(host)
                if isinstance(exc, paramiko.SSHException) and "known_hosts" in str(exc):
                    raise EdgeplaceError(f"{hv.get('ansible_host')}: its host key is unknown, so it is not trusted. "
                                         "First contact: see README \"Real clusters\" (ssh-keyscan, compare the "
                                         "fingerprint, add it to known_hosts)") from exc
                if attempt == 2:
                    raise EdgeplaceError(f"cannot reach {hv.get('ansible_host')} over SSH: {exc}") from exc
        raise AssertionError("unreachable")

    @staticmethod
    def _connect(hv: dict, timeout: float):
        import paramiko
        client = paramiko.SSHClient()
        client.load_system_host_keys()  # ~/.ssh/known_hosts, and the inventory's own file if it names one
        if hv.get("known_hosts_file"):
            client.load_host_keys(str(hv["known_hosts_file"]))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())  # an unknown host key is refused
        client.connect(hv.get("ansible_host"), port=int(hv.get("ansible_port", 22)),
                       username=hv.get("ansible_user", "root"), key_filename=hv.get("ansible_ssh_private_key_file"),
                       timeout=timeout, allow_agent=True, look_for_keys=True)
        return client

    def _drop(self, host: str) -> None:
        client = self.clients.pop(host, None)
        if client is not None:
            transport = client.get_transport()
            client.close()
            if transport is not None:  # no paramiko thread may still run native crypto code at interpreter exit
                transport.join(5)

    def close(self) -> None:
        for host in list(self.clients):
            self._drop(host)
