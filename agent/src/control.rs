//! The control socket: how `xvrrp status` and `xvrrp counters` talk to a running agent.
//!
//! A Unix stream socket (default [`DEFAULT_SOCKET`], mode 0600 in a 0700 directory: root only).
//! One request per connection: the client writes one JSON line (`{"cmd":"status"}`), the agent
//! answers one JSON document (of any size, streamed in chunks) and closes; the client reads to
//! the end. Requests are [`Command`]s; answers are the typed model of [`crate::state`]
//! ([`Status`](crate::state::Status) for `status`, [`RxCounters`](crate::state::RxCounters) for
//! `counters`) or an [`ErrorReply`]. Binding refuses to start a second agent on the same path (a live agent answers on
//! it); a stale socket file left by a killed agent is replaced; anything at the path that is
//! not a socket (a file, a symlink, a directory) is never deleted and binding fails naming it.

use std::{
    io::{self, Read, Write},
    os::unix::{
        fs::{FileTypeExt, PermissionsExt},
        net::UnixStream as StdUnixStream,
    },
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader},
    net::{UnixListener, UnixStream},
    sync::mpsc,
    task::JoinHandle,
};

/// Default control socket path.
pub(crate) const DEFAULT_SOCKET: &str = "/run/xvrrp/xvrrp.sock";

/// Requests are bounded so a stuck or hostile client cannot hold memory.
const MAX_REQUEST: usize = 4096;

/// Control socket errors.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ControlError {
    /// Another agent answers on the socket.
    #[error("another xvrrp agent is already running with control socket {0} (use --control-socket PATH for a second agent)")]
    InUse(PathBuf),
    /// No agent answers.
    #[error(
        "no xvrrp agent answers on {path}: {source} (is it running? is --control-socket right?)"
    )]
    NotRunning {
        /// Socket path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// Something that is not a socket is at the path: never deleted.
    #[error("control socket {path}: refusing to replace it: it is {kind}, not a socket (remove it yourself, or choose another --control-socket)")]
    NotASocket {
        /// Socket path.
        path: PathBuf,
        /// What is there ("a regular file", "a symbolic link"...).
        kind: &'static str,
    },
    /// Any other I/O failure on the socket.
    #[error("control socket {path}: {source}")]
    Io {
        /// Socket path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The agent's answer was not JSON, or reported an error.
    #[error("control socket {path}: {message}")]
    Protocol {
        /// Socket path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A request from a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Request {
    /// The command.
    pub cmd: Command,
}

/// What a client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Command {
    /// The agent and every instance: [`crate::state::Status`].
    Status,
    /// Receive counters per interface and peer: [`crate::state::RxCounters`].
    Counters,
    /// Read the configuration again and apply it: [`crate::state::ReloadReport`].
    Reload,
}

/// The answer to a request the agent could not serve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ErrorReply {
    /// What went wrong.
    pub error: String,
}

/// The agent's side of the socket.
#[derive(Debug)]
pub(crate) struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Binds the control socket, creating its directory (0700) and refusing if another agent is
    /// live on it. Must be called inside a tokio runtime.
    pub(crate) fn bind(path: &Path) -> Result<Self, ControlError> {
        let io_err = |source| ControlError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir).map_err(io_err)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(io_err)?;
            }
        }
        clear_stale(path)?;
        let listener = UnixListener::bind(path).map_err(io_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
        Ok(Self {
            listener,
            path: path.to_owned(),
        })
    }

    /// The socket path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next client and reads its request. A malformed request is answered with an
    /// error right here and `None` is returned. Not cancel-safe (a connection accepted when the
    /// future is dropped is lost): an event loop should use [`ControlServer::serve`].
    #[cfg(test)]
    pub(crate) async fn next(&self) -> Option<(Request, Responder)> {
        let (stream, _) = self.listener.accept().await.ok()?;
        read_request(stream).await
    }

    /// Accepts clients in the background (on the current `LocalSet`): each connection's request
    /// is read in its own task and handed over on the returned channel. Receiving from the
    /// channel is cancel-safe, so an event loop can `select!` on it, and a slow or stuck client
    /// never holds the loop up. The socket file is removed when the task ends (abort it at
    /// shutdown).
    pub(crate) fn serve(self) -> (mpsc::Receiver<(Request, Responder)>, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::task::spawn_local(async move {
            let server = self;
            loop {
                match server.listener.accept().await {
                    Ok((stream, _)) => {
                        let tx = tx.clone();
                        tokio::task::spawn_local(async move {
                            if let Some(req) = read_request(stream).await {
                                let _ = tx.send(req).await;
                            }
                        });
                    }
                    // Out of file descriptors and the like: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        (rx, task)
    }
}

/// Reads one request line (bounded in size and time) from a client.
async fn read_request(stream: UnixStream) -> Option<(Request, Responder)> {
    let mut reader = TokioBufReader::new(stream);
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(2), async {
        let mut limited = (&mut reader).take(MAX_REQUEST as u64);
        limited.read_line(&mut line).await
    })
    .await;
    let mut responder = Responder {
        stream: reader.into_inner(),
    };
    match read {
        Ok(Ok(n)) if n > 0 => match serde_json::from_str::<Request>(line.trim()) {
            Ok(req) => Some((req, responder)),
            Err(e) => {
                responder.error(&format!("bad request: {e}")).await;
                None
            }
        },
        _ => None,
    }
}

/// What is at `path` before binding: nothing (fine), a live agent's socket ([`ControlError::InUse`]),
/// a stale socket (removed), or anything else, which is never touched ([`ControlError::NotASocket`]):
/// a mistyped `--control-socket /etc/passwd` must not delete the file. `symlink_metadata`, so a
/// symlink is judged as itself and never followed.
fn clear_stale(path: &Path) -> Result<(), ControlError> {
    let io_err = |source| ControlError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(ControlError::NotASocket {
            path: path.to_owned(),
            kind: kind_of(&meta.file_type()),
        });
    }
    match StdUnixStream::connect(path) {
        Ok(_) => Err(ControlError::InUse(path.to_owned())),
        // Nobody listens: the file of an agent that died. Only this case is replaced.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(e)),
                _ => Ok(()),
            }
        }
        // Anything else (permission denied, a live agent's full backlog...): leave it alone.
        Err(e) => Err(io_err(e)),
    }
}

/// A file type in words, for [`ControlError::NotASocket`].
fn kind_of(t: &std::fs::FileType) -> &'static str {
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a socket"
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        // Only our socket: if something else was put at the path meanwhile, leave it.
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Answers one request.
#[derive(Debug)]
pub(crate) struct Responder {
    stream: UnixStream,
}

impl Responder {
    /// Sends `value` as the answer and closes the connection.
    pub(crate) async fn reply<T: Serialize>(mut self, value: &T) {
        match serde_json::to_vec(value) {
            Ok(mut bytes) => {
                bytes.push(b'\n');
                self.send(bytes).await;
            }
            Err(e) => self.error(&format!("cannot encode the answer: {e}")).await,
        }
    }

    /// Sends an [`ErrorReply`] and closes the connection.
    pub(crate) async fn error(&mut self, message: &str) {
        let reply = ErrorReply {
            error: message.to_owned(),
        };
        let mut line = serde_json::to_string(&reply).unwrap_or_default();
        line.push('\n');
        let _ = tokio::time::timeout(STALL_TIMEOUT, self.stream.write_all(line.as_bytes())).await;
    }

    /// Streams `bytes` in chunks, however large: a client that reads gets the whole answer; one
    /// that stops reading for [`STALL_TIMEOUT`] is dropped.
    async fn send(mut self, bytes: Vec<u8>) {
        for chunk in bytes.chunks(REPLY_CHUNK) {
            match tokio::time::timeout(STALL_TIMEOUT, self.stream.write_all(chunk)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
        let _ = self.stream.shutdown().await;
    }
}

/// A reply is written this much at a time; each piece must make progress within
/// [`STALL_TIMEOUT`].
const REPLY_CHUNK: usize = 64 * 1024;
/// How long either side waits for the other to make progress.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Client side: sends `cmd` to the agent at `path` and returns its answer.
pub(crate) fn query<T: DeserializeOwned>(path: &Path, cmd: Command) -> Result<T, ControlError> {
    let raw = query_raw(path, cmd)?;
    serde_json::from_slice(raw.trim_ascii()).map_err(|e| ControlError::Protocol {
        path: path.to_owned(),
        message: format!("unreadable answer: {e}"),
    })
}

/// Client side: sends `cmd` to the agent at `path` and returns its answer as JSON text (an
/// [`ErrorReply`] is returned as an error).
pub(crate) fn query_raw(path: &Path, cmd: Command) -> Result<Vec<u8>, ControlError> {
    let mut stream = StdUnixStream::connect(path).map_err(|source| ControlError::NotRunning {
        path: path.to_owned(),
        source,
    })?;
    let io_err = |source| ControlError::Io {
        path: path.to_owned(),
        source,
    };
    stream
        .set_read_timeout(Some(STALL_TIMEOUT))
        .map_err(io_err)?;
    stream
        .set_write_timeout(Some(STALL_TIMEOUT))
        .map_err(io_err)?;
    let mut req = serde_json::to_string(&Request { cmd }).map_err(|e| ControlError::Protocol {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    req.push('\n');
    stream.write_all(req.as_bytes()).map_err(io_err)?;
    // The answer is one JSON document of any size, ended by the agent closing the connection
    // (each read must make progress within the timeout set above, not the whole answer).
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io_err)?;
    if let Ok(ErrorReply { error }) = serde_json::from_slice::<ErrorReply>(raw.trim_ascii()) {
        return Err(ControlError::Protocol {
            path: path.to_owned(),
            message: error,
        });
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::state::Status;

    /// A socket path in a fresh directory, unique per call (pid, time and tag), so leftovers of
    /// an earlier run with a reused pid cannot collide.
    fn temp_sock(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("xvrrp-ctl-{tag}-{}-{nanos}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("x.sock")
    }

    #[test]
    fn answers_requests_and_refuses_a_second_agent() {
        let path = temp_sock("a");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let server = ControlServer::bind(&path).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "socket is root only");
            let p2 = path.clone();
            let client = tokio::task::spawn_blocking(move || query::<Status>(&p2, Command::Status));
            let (req, resp) = server.next().await.unwrap();
            assert_eq!(req.cmd, Command::Status);
            resp.reply(&Status::default()).await;
            let got = client.await.unwrap().unwrap();
            assert_eq!(got, Status::default());

            let p3 = path.clone();
            let second = tokio::task::spawn_blocking(move || {
                let rt2 = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt2.block_on(async { ControlServer::bind(&p3).map(|_| ()) })
            });
            // The first server must be accepting for the liveness probe to connect; the probe's
            // connection is answered by nothing, which is fine: connect() alone proves liveness.
            let err = second.await.unwrap().unwrap_err();
            assert!(matches!(err, ControlError::InUse(_)), "{err}");
            drop(server);
        });
        assert!(!path.exists(), "socket removed on drop");
        let _ = std::fs::remove_dir(path.parent().unwrap());
    }

    #[test]
    fn replies_of_any_size_arrive_whole() {
        // ~6 MB: far beyond a Unix socket's buffer, and the client reads in its own time.
        let path = temp_sock("c");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let value: Vec<String> = (0..60_000)
            .map(|n| format!("VI_{n} {}", "x".repeat(80)))
            .collect();
        rt.block_on(async {
            let server = ControlServer::bind(&path).unwrap();
            let p2 = path.clone();
            let client =
                tokio::task::spawn_blocking(move || query::<Vec<String>>(&p2, Command::Status));
            let (_req, resp) = server.next().await.unwrap();
            resp.reply(&value).await;
            let got = client.await.unwrap().unwrap();
            assert_eq!(got.len(), 60_000);
            assert_eq!(got, value);
            drop(server);
        });
        let _ = std::fs::remove_dir(path.parent().unwrap());
    }

    #[test]
    fn stale_socket_is_replaced_and_missing_agent_is_reported() {
        let path = temp_sock("b");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // leaves a stale file
        let err = query::<Status>(&path, Command::Status).unwrap_err();
        assert!(matches!(err, ControlError::NotRunning { .. }), "{err}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let server = ControlServer::bind(&path).unwrap();
            drop(server);
        });
        let _ = std::fs::remove_dir(path.parent().unwrap());
    }
    #[test]
    fn never_deletes_what_is_not_a_socket() {
        let path = temp_sock("d");
        let dir = path.parent().unwrap().to_owned();
        std::fs::create_dir_all(&dir).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // A regular file (a mistyped --control-socket): left as it was, error names the path.
        std::fs::write(&path, "precious\n").unwrap();
        let err = rt
            .block_on(async { ControlServer::bind(&path).map(|_| ()) })
            .unwrap_err();
        assert!(matches!(err, ControlError::NotASocket { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
        assert!(msg.contains("a regular file"), "{msg}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious\n");
        std::fs::remove_file(&path).unwrap();
        // A symlink to a victim: neither the link nor the victim is touched.
        let victim = dir.join("victim");
        std::fs::write(&victim, "victim\n").unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let err = rt
            .block_on(async { ControlServer::bind(&path).map(|_| ()) })
            .unwrap_err();
        assert!(err.to_string().contains("a symbolic link"), "{err}");
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim\n");
        // A symlink to a stale socket is not followed either.
        std::fs::remove_file(&path).unwrap();
        let real = dir.join("real.sock");
        drop(std::os::unix::net::UnixListener::bind(&real).unwrap());
        std::os::unix::fs::symlink(&real, &path).unwrap();
        assert!(rt
            .block_on(async { ControlServer::bind(&path).map(|_| ()) })
            .is_err());
        assert!(real.exists(), "the link's target is not removed");
        // A directory.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let err = rt
            .block_on(async { ControlServer::bind(&path).map(|_| ()) })
            .unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
        assert!(path.is_dir());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
