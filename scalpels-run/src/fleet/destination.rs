//! Where a fleet lives: a directory (a shared file system) or an S3-compatible bucket, and the
//! few operations the fleet needs of either: put a file under a key, list and delete keys.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use object_store::{
    ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig, WriteMultipart,
    aws::{AmazonS3, AmazonS3Builder},
    path::Path as Key,
};

/// Files larger than this go up in parts, so a large table never sits whole in memory.
const MULTIPART_CHUNK: usize = 16 << 20;

/// A fleet's location as the user wrote it: a directory, or `s3://bucket/prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix("s3://") else {
            if text.contains("://") {
                return Err(format!(
                    "{text}: only s3:// URLs (any S3-compatible store) or directories"
                ));
            }
            return Ok(Self::Dir(text.into()));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{text}: no bucket (s3://BUCKET/PREFIX)"));
        }
        Ok(Self::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(dir) => write!(f, "{}", dir.display()),
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Retries of a failed request, and how long they may go on: less than the client's default
/// (10, 3 minutes), because a rotation waits for the closing run's uploads and the tracing
/// loop with it; a store down longer is an outage, whose runs are kept for `publish`.
const PUT_RETRIES: usize = 3;
const PUT_RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected destination.
#[derive(Clone)]
pub enum Destination {
    Dir(PathBuf),
    S3 {
        store: Arc<AmazonS3>,
        prefix: String,
        location: Location,
    },
}

impl Destination {
    /// Connects to `location`; an S3 store is configured from the AWS_* environment variables
    /// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION or
    /// AWS_DEFAULT_REGION, AWS_ENDPOINT_URL for other S3-compatible stores, AWS_ALLOW_HTTP=true
    /// for a plain-HTTP endpoint).
    pub fn open(location: &Location) -> Result<Self> {
        match location {
            Location::Dir(dir) => Ok(Self::Dir(dir.clone())),
            Location::S3 { bucket, prefix } => {
                let store = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(RetryConfig {
                        max_retries: PUT_RETRIES,
                        retry_timeout: PUT_RETRY_TIMEOUT,
                        ..RetryConfig::default()
                    })
                    .build()
                    .with_context(|| format!("configuring the S3 client for {location}"))?;
                Ok(Self::S3 {
                    store: Arc::new(store),
                    prefix: prefix.clone(),
                    location: location.clone(),
                })
            }
        }
    }

    fn s3_key(prefix: &str, key: &str) -> Key {
        if prefix.is_empty() {
            Key::from(key)
        } else {
            Key::from(format!("{prefix}/{key}"))
        }
    }

    /// Where `key` is, for messages.
    pub fn describe(&self, key: &str) -> String {
        match self {
            Self::Dir(dir) => dir.join(key).display().to_string(),
            Self::S3 { location, .. } => format!("{location}/{key}"),
        }
    }

    /// Copies the local file `from` to `key`; returns its size. In a directory the file
    /// appears whole or not at all (written hidden, then renamed), as an object does.
    pub async fn put_file(&self, from: &Path, key: &str) -> Result<u64> {
        match self {
            Self::Dir(dir) => {
                let (parents, name) = key.rsplit_once('/').unwrap_or(("", key));
                fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                // Each directory on the way opened without following links, as in a run.
                let mut at = crate::run::dir::Dir::open(dir)?;
                for part in parents.split('/').filter(|part| !part.is_empty()) {
                    at = at.subdir(part)?;
                }
                let mut source =
                    fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
                let hidden = format!(".{name}.partial");
                at.write_then_rename(&hidden, name, |mut file| {
                    std::io::copy(&mut source, &mut file)
                        .map(drop)
                        .with_context(|| format!("copying {} to {}", from.display(), hidden))
                })?;
                Ok(source.metadata()?.len())
            }
            Self::S3 { store, prefix, .. } => {
                let key = Self::s3_key(prefix, key);
                let size = fs::metadata(from)
                    .with_context(|| format!("reading {}", from.display()))?
                    .len();
                if size as usize <= MULTIPART_CHUNK {
                    let data =
                        fs::read(from).with_context(|| format!("reading {}", from.display()))?;
                    store
                        .put(&key, PutPayload::from(data))
                        .await
                        .map_err(flat)?;
                } else {
                    put_multipart(store, &key, from).await?;
                }
                Ok(size)
            }
        }
    }

    /// The keys below `dir` (a key prefix ending before a `/`), relative to the fleet's root.
    pub async fn list(&self, dir: &str) -> Result<Vec<String>> {
        match self {
            Self::Dir(root) => {
                let Ok(entries) = fs::read_dir(root.join(dir)) else {
                    return Ok(Vec::new());
                };
                Ok(entries
                    .flatten()
                    .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
                    .collect())
            }
            Self::S3 { store, prefix, .. } => {
                let objects: Vec<_> = store
                    .list(Some(&Self::s3_key(prefix, dir)))
                    .try_collect()
                    .await
                    .map_err(flat)?;
                let root = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                Ok(objects
                    .into_iter()
                    .filter_map(|o| o.location.as_ref().strip_prefix(&root).map(str::to_owned))
                    .collect())
            }
        }
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        match self {
            Self::Dir(dir) => {
                let path = dir.join(key);
                fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))
            }
            Self::S3 { store, prefix, .. } => {
                store.delete(&Self::s3_key(prefix, key)).await.map_err(flat)
            }
        }
    }

    /// Checks that files can be put here (and removed), by writing a small hidden one at `key`.
    pub async fn probe(&self, key: &str) -> Result<()> {
        let result = async {
            match self {
                Self::Dir(dir) => {
                    let path = dir.join(key);
                    if let Some(parent) = path.parent() {
                        fs::create_dir_all(parent)?;
                    }
                    fs::write(&path, b"ok")?;
                }
                Self::S3 { store, prefix, .. } => {
                    store
                        .put(&Self::s3_key(prefix, key), PutPayload::from_static(b"ok"))
                        .await
                        .map_err(flat)?;
                }
            }
            self.delete(key).await
        };
        match result.await {
            Ok(()) => Ok(()),
            Err(e) => bail!("cannot write to {}: {e:#}", self.describe(key)),
        }
    }
}

/// An object_store error as one message: its text already repeats some of its causes, so a
/// cause is added only when it says something new.
fn flat(e: object_store::Error) -> anyhow::Error {
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(error) = cause {
        let text = error.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = error.source();
    }
    anyhow::anyhow!(message)
}

async fn put_multipart(store: &AmazonS3, key: &Key, from: &Path) -> Result<()> {
    use std::io::Read as _;
    let mut file = fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let upload = store.put_multipart(key).await.map_err(flat)?;
    let mut upload = WriteMultipart::new_with_chunk_size(upload, MULTIPART_CHUNK);
    let mut chunk = vec![0; MULTIPART_CHUNK];
    loop {
        let n = file
            .read(&mut chunk)
            .with_context(|| format!("reading {}", from.display()))?;
        if n == 0 {
            break;
        }
        upload.wait_for_capacity(2).await.map_err(flat)?;
        upload.put(Bytes::copy_from_slice(&chunk[..n]));
    }
    upload.finish().await.map_err(flat)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_directories_or_s3_urls() {
        assert_eq!(
            Location::parse("s3://fleet/prod/nova").unwrap(),
            Location::S3 {
                bucket: "fleet".into(),
                prefix: "prod/nova".into()
            }
        );
        assert_eq!(
            Location::parse("s3://fleet").unwrap().to_string(),
            "s3://fleet"
        );
        assert_eq!(
            Location::parse("/mnt/fleet").unwrap(),
            Location::Dir("/mnt/fleet".into())
        );
        assert!(Location::parse("gs://fleet/x").is_err());
        assert!(Location::parse("s3:///x").is_err());
    }
}
