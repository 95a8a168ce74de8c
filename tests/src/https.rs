//! A real local HTTPS file server for the install path: Python's `http.server` wrapped in TLS
//! with a certificate for 127.0.0.1 signed by a throw-away CA that `openssl` makes per server.
//! Tests hand the CA to curl (`CURL_CA_BUNDLE`), serve release archives from a directory laid
//! out like GitHub's `releases/download/<tag>/<asset>`, and read which paths were requested.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The server: a directory tree served over HTTPS, and its request log.
pub struct HttpsServer {
    /// `https://127.0.0.1:PORT`
    pub url: String,
    /// The CA certificate (PEM) that signed the server's certificate.
    pub ca: PathBuf,
    /// The directory served.
    pub root: PathBuf,
    log: PathBuf,
    _server: Python,
    _dir: tempfile::TempDir,
}

/// A Python server's process, killed when dropped.
pub(crate) struct Python(Child);

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `python3 -c SCRIPT ARGS` (stdin and stdout piped, so it exits with the test process):
/// the server, and the first line it printed.
pub(crate) fn python(script: &str, args: &[&std::ffi::OsStr]) -> (Python, String) {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 is installed (scripts/rig.sh install)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Python(child), line)
}

// Serves `root`, logs each request's path (one per line, flushed) and exits when its stdin closes,
// so a test process that dies takes it along.
const SERVER: &str = r#"
import http.server, ssl, sys, threading, os, functools
root, cert, key, log = sys.argv[1:5]
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        with open(log, "a") as f:
            f.write(self.path + "\n")
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=root))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
def watch():
    sys.stdin.read()
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
srv.serve_forever()
"#;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (scripts/rig.sh install)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl HttpsServer {
    /// Makes a CA and a server certificate for 127.0.0.1, and starts serving an empty `root`.
    pub fn start() -> HttpsServer {
        HttpsServer::expiring_in(2)
    }

    /// [`HttpsServer::start`] with a server certificate that expires in `days` days.
    pub fn expiring_in(days: u32) -> HttpsServer {
        let days = days.to_string();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=deploy-action test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(d, &ca);
        let mut csr = vec!["req", "-nodes"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(d, &csr);
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                &days,
                "-out",
                "server.pem",
                "-extfile",
                "ext.cnf",
            ],
        );
        let root = d.join("www");
        std::fs::create_dir_all(&root).unwrap();
        let log = d.join("requests.log");
        std::fs::write(&log, "").unwrap();
        let (pem, key) = (d.join("server.pem"), d.join("server.key"));
        let (server, line) = python(
            SERVER,
            &[root.as_ref(), pem.as_ref(), key.as_ref(), log.as_ref()],
        );
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("https server did not start: {line:?}"));
        HttpsServer {
            url: format!("https://127.0.0.1:{port}"),
            ca: d.join("ca.pem"),
            root,
            log,
            _server: server,
            _dir: dir,
        }
    }

    /// Puts `bytes` at `path` (relative to the served root).
    pub fn put(&self, path: &str, bytes: &[u8]) {
        let p = self.root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}
