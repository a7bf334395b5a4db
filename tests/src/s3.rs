//! A real S3-compatible server for the tests: `s3s-fs` (checks SigV4 signatures), installed
//! by tests/run-all.sh into `<target>/tools/bin`, started on a free loopback port over a
//! temporary directory, with one bucket.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vidfarm::storage::S3Settings;

pub struct S3Server {
    pub settings: S3Settings,
    /// Objects live at `root/<bucket>/<key>`.
    pub root: tempfile::TempDir,
    child: Child,
}

fn binary() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo.join("target"), |t| repo.join(t));
    target.join("tools/bin/s3s-fs")
}

impl S3Server {
    pub async fn start() -> Self {
        let root = tempfile::tempdir().expect("a temp dir");
        let bucket = "vidfarm-test";
        std::fs::create_dir_all(root.path().join(bucket)).expect("the bucket");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("addr").port();
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "AKIAVIDFARMTEST", "--secret-key", "vidfarm-test-secret-key"])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} runs (tests/run-all.sh installs it): {e}", binary().display()));
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let settings = S3Settings {
            bucket: bucket.into(),
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            region: "us-east-1".into(),
            access_key_id: "AKIAVIDFARMTEST".into(),
            secret_access_key: "vidfarm-test-secret-key".into(),
            force_path_style: true,
        };
        Self { settings, root, child }
    }

    /// Every object key in the bucket.
    pub fn keys(&self) -> Vec<String> {
        let bucket = self.root.path().join(&self.settings.bucket);
        let mut keys = Vec::new();
        let mut stack = vec![bucket.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(relative) = path.strip_prefix(&bucket) {
                    let key = relative.to_string_lossy().into_owned();
                    // s3s-fs keeps metadata beside objects in dot files.
                    if !key.split('/').any(|part| part.starts_with('.')) {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort();
        keys
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
