"""A local CA, generated at start, and a server certificate for 127.0.0.1/localhost it signs.

With the `cryptography` package when it is installed, else the `openssl` command (the project
does not depend on either: TLS on the link is optional). EC P-256 keys, as a modern service's.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


class TLSUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class LocalCA:
    directory: Path
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def generate(directory: Path | None = None) -> LocalCA:
    directory = Path(directory or tempfile.mkdtemp(prefix="execbench-ca-"))
    directory.mkdir(parents=True, exist_ok=True)
    ca = LocalCA(directory, directory / "ca.pem", directory / "server.pem", directory / "server.key")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        _with_openssl(ca)
    else:
        _with_cryptography(ca)
    return ca


def _with_cryptography(ca: LocalCA) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "execbench local CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca.ca_file.write_bytes(ca_cert.public_bytes(pem))
    ca.cert_file.write_bytes(cert.public_bytes(pem))
    ca.key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))


def _with_openssl(ca: LocalCA) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TLSUnavailable("TLS on the link needs the `cryptography` package or the `openssl` "
                             "command; neither is installed")
    d = ca.directory
    ext = d / "server.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def run(*args: str) -> None:
        done = subprocess.run([openssl, *args], capture_output=True, text=True, check=False, timeout=60)
        if done.returncode != 0:
            raise TLSUnavailable(f"openssl {args[0]} failed: {done.stderr.strip()[-300:]}")

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(ca.ca_file), "-days", "2",
        "-subj", "/CN=execbench local CA")
    run("req", *ec, "-keyout", str(ca.key_file), "-out", str(d / "server.csr"), "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(ca.ca_file), "-CAkey", str(d / "ca.key"),
        "-CAcreateserial", "-out", str(ca.cert_file), "-days", "2", "-extfile", str(ext))
