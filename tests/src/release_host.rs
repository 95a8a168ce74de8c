//! A local stand-in for GitHub's releases, over HTTPS (the CA of an [`HttpsServer`], handed to
//! curl with `CURL_CA_BUNDLE`): the REST calls `scripts/release.sh` makes (create a draft
//! release, upload an asset at the release's `upload_url`, publish it with PATCH, delete it) and
//! the browser downloads `/<owner>/<repo>/releases/download/<tag>/<asset>`, served only once the
//! release is published. It can fail the upload or the publish (HTTP 500), and in `private` mode
//! answers the browser download URL 404 (as GitHub does for a private repository, token or not)
//! and serves the REST API's "Get a release by tag name" and "Get a release asset" (with
//! `Accept: application/octet-stream`: a 302 to a second listener, "objects", another origin like
//! GitHub's signed object-storage URLs) to the token. Every request is
//! recorded with its server, method, path and Authorization header.
//!
//! Known gap: GitHub's real upload host is uploads.github.com, another origin; here the
//! `upload_url` points at the same listener under `/uploads/`.

use std::process::Command;

use crate::https::{HttpsServer, Python, python};

/// What the host fails, or how it serves downloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Everything works; downloads are anonymous.
    Normal,
    /// Asset uploads answer 500.
    FailUpload,
    /// Publishing (PATCH draft=false) answers 500.
    FailPublish,
    /// Asset uploads are never answered (a stalled upload, for a cancelled run).
    StallUpload,
    /// Downloads: anonymous 404, with the token a 302 to the objects listener.
    Private,
}

/// One recorded request.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Request {
    /// `api` or `objects`
    pub srv: String,
    /// HTTP method
    pub method: String,
    /// path and query
    pub path: String,
    /// the Authorization header, if any
    pub auth: Option<String>,
}

/// The running host.
pub struct ReleaseHost {
    /// `https://127.0.0.1:PORT`: API, uploads and downloads.
    pub url: String,
    /// `https://127.0.0.1:PORT2`: the redirect target of private downloads.
    pub objects_url: String,
    /// The token the API accepts.
    pub token: String,
    /// The CA to hand to curl.
    pub ca: std::path::PathBuf,
    log: std::path::PathBuf,
    _server: Python,
    _certs: HttpsServer,
    _dir: tempfile::TempDir,
}

const HOST: &str = r#"
import http.server, ssl, sys, threading, os, json, re, urllib.parse
cert, key, log, token, mode = sys.argv[1:6]
lock = threading.Lock()
releases = {}
next_id = [1]
ports = {}
def record(srv, h):
    with lock, open(log, "a") as f:
        f.write(json.dumps({"srv": srv, "method": h.command, "path": h.path,
                            "auth": h.headers.get("Authorization")}) + "\n")
def find(tag, asset):
    for r in releases.values():
        if r["tag_name"] == tag and not r["draft"] and asset in r["assets"]:
            return r["assets"][asset]
    return None
class Base(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, code, body=b"", ctype="application/json", extra=()):
        if isinstance(body, (dict, list)): body = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra: self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""
class Api(Base):
    def authed(self):
        return self.headers.get("Authorization") == "Bearer " + token
    def handle_any(self):
        record("api", self)
        data = self.body()
        u = urllib.parse.urlparse(self.path)
        p = u.path
        m = re.fullmatch(r"/([^/]+)/([^/]+)/releases/download/([^/]+)/([^/]+)", p)
        if m and self.command == "GET":
            tag, asset = m.group(3), m.group(4)
            if mode == "private":
                # As GitHub: a private repository's browser download URL answers 404, with or
                # without a token; the REST API's asset endpoint is the way in.
                return self.send(404, {"message": "Not Found"})
            b = find(tag, asset)
            if b is None: return self.send(404, {"message": "Not Found"})
            return self.send(200, b, "application/octet-stream")
        if p == "/_state" and self.command == "GET":
            return self.send(200, {str(k): {"tag_name": r["tag_name"], "draft": r["draft"],
                                            "assets": sorted(r["assets"])} for k, r in releases.items()})
        if not self.authed():
            return self.send(401, {"message": "Bad credentials"})
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/releases/tags/([^/]+)", p)
        if m and self.command == "GET":
            for rid, r in releases.items():
                if r["tag_name"] == m.group(3) and not r["draft"]:
                    assets = [{"id": rid * 1000 + i, "name": n} for i, n in enumerate(sorted(r["assets"]))]
                    return self.send(200, {"id": rid, "tag_name": r["tag_name"], "assets": assets})
            return self.send(404, {"message": "Not Found"})
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/releases/assets/(\d+)", p)
        if m and self.command == "GET":
            aid = int(m.group(3)); rid, i = divmod(aid, 1000)
            r = releases.get(rid)
            names = sorted(r["assets"]) if r and not r["draft"] else []
            if i >= len(names): return self.send(404, {"message": "Not Found"})
            if self.headers.get("Accept") != "application/octet-stream":
                return self.send(200, {"id": aid, "name": names[i]})
            loc = "https://127.0.0.1:%d/objects/%s/%s" % (ports["objects"], r["tag_name"], names[i])
            return self.send(302, b"", "text/plain", [("Location", loc)])
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/releases", p)
        if m and self.command == "POST":
            req = json.loads(data or b"{}")
            with lock:
                if any(r["tag_name"] == req.get("tag_name") for r in releases.values()):
                    return self.send(422, {"message": "Validation Failed", "errors": [{"code": "already_exists"}]})
                rid = next_id[0]; next_id[0] += 1
                releases[rid] = {"tag_name": req["tag_name"], "draft": bool(req.get("draft")), "assets": {}}
            base = "https://127.0.0.1:%d" % ports["api"]
            return self.send(201, {"id": rid, "tag_name": req["tag_name"], "draft": releases[rid]["draft"],
                                   "upload_url": "%s/uploads/repos/%s/%s/releases/%d/assets{?name,label}" % (base, m.group(1), m.group(2), rid)})
        m = re.fullmatch(r"/uploads/repos/([^/]+)/([^/]+)/releases/(\d+)/assets", p)
        if m and self.command == "POST":
            if mode == "fail-upload": return self.send(500, {"message": "Server Error"})
            if mode == "stall-upload":
                import time; time.sleep(3600)
            rid = int(m.group(3))
            if rid not in releases: return self.send(404, {"message": "Not Found"})
            name = urllib.parse.parse_qs(u.query).get("name", [""])[0]
            releases[rid]["assets"][name] = data
            return self.send(201, {"name": name, "size": len(data)})
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/releases/(\d+)", p)
        if m:
            rid = int(m.group(3))
            if rid not in releases: return self.send(404, {"message": "Not Found"})
            if self.command == "PATCH":
                if mode == "fail-publish": return self.send(500, {"message": "Server Error"})
                req = json.loads(data or b"{}")
                if "draft" in req: releases[rid]["draft"] = bool(req["draft"])
                return self.send(200, {"id": rid, "draft": releases[rid]["draft"]})
            if self.command == "DELETE":
                del releases[rid]
                self.send_response(204); self.send_header("Content-Length", "0"); self.end_headers()
                return
        return self.send(404, {"message": "Not Found"})
    do_GET = do_POST = do_PATCH = do_DELETE = handle_any
class Objects(Base):
    def do_GET(self):
        record("objects", self)
        m = re.fullmatch(r"/objects/([^/]+)/([^/]+)", self.path)
        b = find(m.group(1), m.group(2)) if m else None
        if b is None: return self.send(404, {"message": "Not Found"})
        return self.send(200, b, "application/octet-stream")
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
for name, cls in (("api", Api), ("objects", Objects)):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), cls)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    ports[name] = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
print(ports["api"], ports["objects"], flush=True)
sys.stdin.read()
os._exit(0)
"#;

impl ReleaseHost {
    /// Starts the host, accepting `token`, behaving as `mode`.
    pub fn start(token: &str, mode: Mode) -> ReleaseHost {
        // The HttpsServer makes the CA and the certificate for 127.0.0.1; the host reuses them.
        let certs = HttpsServer::start();
        let cert_dir = certs.ca.parent().unwrap().to_path_buf();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        std::fs::write(&log, "").unwrap();
        let mode_arg = match mode {
            Mode::Normal => "normal",
            Mode::FailUpload => "fail-upload",
            Mode::FailPublish => "fail-publish",
            Mode::StallUpload => "stall-upload",
            Mode::Private => "private",
        };
        let (pem, key) = (cert_dir.join("server.pem"), cert_dir.join("server.key"));
        let (server, line) = python(
            HOST,
            &[
                pem.as_ref(),
                key.as_ref(),
                log.as_ref(),
                token.as_ref(),
                mode_arg.as_ref(),
            ],
        );
        let mut ports = line.split_whitespace();
        let (Some(api), Some(objects)) = (ports.next(), ports.next()) else {
            panic!("release host did not start: {line:?}");
        };
        ReleaseHost {
            url: format!("https://127.0.0.1:{api}"),
            objects_url: format!("https://127.0.0.1:{objects}"),
            token: token.to_owned(),
            ca: certs.ca.clone(),
            log,
            _server: server,
            _certs: certs,
            _dir: dir,
        }
    }

    /// `<url>/<owner>/<repo>/releases/download`, for `DEPLOY_ACTION_RELEASE_URL`.
    pub fn download_base(&self, repo: &str) -> String {
        format!("{}/{repo}/releases/download", self.url)
    }

    /// The releases: id -> {tag_name, draft, assets}.
    pub fn state(&self) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-sSf", "--cacert"])
            .arg(&self.ca)
            .arg(format!("{}/_state", self.url))
            .output()
            .unwrap();
        assert!(out.status.success(), "GET /_state failed");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The tags of published releases.
    pub fn published_tags(&self) -> Vec<String> {
        let state = self.state();
        state
            .as_object()
            .unwrap()
            .values()
            .filter(|r| r["draft"] == false)
            .map(|r| r["tag_name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The requests so far, in order (without the test's own `/_state` reads).
    pub fn requests(&self) -> Vec<Request> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Request>(l).unwrap())
            .filter(|r| r.path != "/_state")
            .collect()
    }
}
