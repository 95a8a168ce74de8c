//! A TCP proxy in front of the registry that injects the faults ecr-push must survive: a 500 on
//! the first blob upload, a connection dropped in the middle of the first large upload, 500 on every
//! blob check, a stalled upload, or 401 on everything (wrong credentials).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer the first blob upload (`PUT .../blobs/uploads/...` with the body) with 500.
    Fail500OnFirstUpload,
    /// Cut the connection carrying the first upload after this many bytes of it.
    DropFirstUploadAfter(u64),
    /// Answer every request with 401.
    Unauthorized,
    /// Hold every blob upload unanswered: a push stays in flight until it is stopped.
    StallUploads,
    /// Answer the first blob upload with 404 `BLOB_UPLOAD_UNKNOWN`, as a registry does for a
    /// session it purged or expired.
    ForgetFirstSession,
    /// Answer every blob existence check (`HEAD .../blobs/...`) with 500 (and mark the proxy
    /// fired): a push that needs no blob check goes through untouched.
    FailBlobChecks,
}

/// A running proxy.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Whether the one-shot fault has fired.
    pub fired: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const RESP_500: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 55\r\nConnection: close\r\n\r\n{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"injected 500\"}]}";
const RESP_404_UPLOAD: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 75\r\nConnection: close\r\n\r\n{\"errors\":[{\"code\":\"BLOB_UPLOAD_UNKNOWN\",\"message\":\"blob upload unknown\"}]}";
const RESP_401: &[u8] = b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nWww-Authenticate: Basic realm=\"ecr\"\r\nContent-Length: 60\r\nConnection: close\r\n\r\n{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"bad password\"}]}";

/// Starts a proxy to `upstream` (`127.0.0.1:PORT`).
pub async fn start(upstream: String, fault: Fault) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let fired = Arc::new(AtomicBool::new(false));
    let f2 = fired.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let (upstream, fired) = (upstream.clone(), f2.clone());
            tokio::spawn(async move {
                let _ = serve(client, upstream, fault, fired).await;
            });
        }
    });
    Proxy { url, fired, task }
}

/// Whether a request starts here that carries a blob's bytes: ecr-push's `PUT` to an upload
/// session (a manifest's `PUT` goes to `/manifests/`, a session's `POST` has no body).
fn is_blob_upload(chunk: &[u8]) -> bool {
    chunk.starts_with(b"PUT ")
        && chunk
            .split(|&b| b == b'\n')
            .next()
            .is_some_and(|line| line.windows(15).any(|w| w == b"/blobs/uploads/"))
}

async fn serve(
    mut client: TcpStream,
    upstream: String,
    fault: Fault,
    fired: Arc<AtomicBool>,
) -> std::io::Result<()> {
    if fault == Fault::Unauthorized {
        let mut buf = [0u8; 4096];
        let _ = client.read(&mut buf).await?;
        client.write_all(RESP_401).await?;
        return client.shutdown().await;
    }
    let server = TcpStream::connect(&upstream).await?;
    let (mut cr, cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let cw = Arc::new(tokio::sync::Mutex::new(cw));
    let cw2 = cw.clone();
    let down = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = sr.read(&mut buf).await?;
            if n == 0 {
                return cw2.lock().await.shutdown().await;
            }
            cw2.lock().await.write_all(&buf[..n]).await?;
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    let counted = AtomicU64::new(0);
    let mut in_upload = false;
    loop {
        let n = cr.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        let upload = is_blob_upload(chunk);
        if upload && fault == Fault::StallUploads {
            fired.store(true, Ordering::SeqCst);
            down.abort();
            // Keep the connection open, read and drop what comes, never answer.
            while cr.read(&mut buf).await? > 0 {}
            return Ok(());
        }
        if fault == Fault::FailBlobChecks
            && chunk.starts_with(b"HEAD ")
            && chunk
                .split(|&b| b == b'\n')
                .next()
                .is_some_and(|line| line.windows(7).any(|w| w == b"/blobs/"))
        {
            fired.store(true, Ordering::SeqCst);
            down.abort();
            let mut w = cw.lock().await;
            w.write_all(RESP_500).await?;
            return w.shutdown().await;
        }
        if upload && !fired.load(Ordering::SeqCst) {
            match fault {
                Fault::Fail500OnFirstUpload | Fault::ForgetFirstSession => {
                    fired.store(true, Ordering::SeqCst);
                    down.abort();
                    let mut w = cw.lock().await;
                    let answer = if fault == Fault::ForgetFirstSession {
                        RESP_404_UPLOAD
                    } else {
                        RESP_500
                    };
                    w.write_all(answer).await?;
                    return w.shutdown().await;
                }
                Fault::DropFirstUploadAfter(_) => in_upload = true,
                Fault::Unauthorized | Fault::StallUploads | Fault::FailBlobChecks => {}
            }
        }
        if in_upload && let Fault::DropFirstUploadAfter(limit) = fault {
            let total = counted.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            if total > limit {
                fired.store(true, Ordering::SeqCst);
                down.abort();
                // Dropping both halves cuts the connection mid-body.
                return Ok(());
            }
        }
        sw.write_all(chunk).await?;
    }
    let _ = sw.shutdown().await;
    let _ = down.await;
    Ok(())
}
