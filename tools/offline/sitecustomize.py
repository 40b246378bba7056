"""Block the network for this Python process and every Python process it starts.

Imported automatically when this folder is on PYTHONPATH (Python imports `sitecustomize` at
start-up). Connections to the loopback interface (127.0.0.0/8, ::1, localhost) and Unix sockets
still work, so DataLoader workers and local `torchrun` groups run; any other connection, and any
name lookup other than localhost's, raises `OSError` and is written to `$MLR_NET_LOG` (one line
per attempt), so that a test can fail on it even when the notebook caught the error.
"""
import os, socket, ipaddress, traceback

_LOCAL_NAMES = {'localhost', 'localhost.localdomain', 'ip6-localhost', ''}

def _is_local(host):
    if host is None: return True
    if isinstance(host, bytes): host = host.decode()
    host = str(host).strip('[]').lower()
    if host in _LOCAL_NAMES: return True
    try: return ipaddress.ip_address(host.split('%')[0]).is_loopback
    except ValueError: return False

def _refuse(what):
    msg = f"network blocked (offline check): {what}"
    log = os.environ.get('MLR_NET_LOG')
    if log:
        where = ''.join(traceback.format_stack(limit=8)[:-2]).replace('\n', ' | ')
        with open(log, 'a') as f: f.write(f"{os.getpid()} {msg} :: {where}\n")
    raise OSError(msg)

_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

def _check_addr(sock, addr):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(addr[0]): _refuse(f"connect to {addr!r}")

def connect(self, addr):
    _check_addr(self, addr); return _connect(self, addr)

def connect_ex(self, addr):
    _check_addr(self, addr); return _connect_ex(self, addr)

def getaddrinfo(host, *args, **kwargs):
    if not _is_local(host): _refuse(f"look up {host!r}")
    return _getaddrinfo(host, *args, **kwargs)

socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
os.environ['MLR_OFFLINE'] = '1'
