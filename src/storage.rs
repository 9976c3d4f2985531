//! Attachment blobs in object storage (a local folder, or an S3-compatible bucket), never in
//! the database. Uploads stream through a multipart upload, so a file is never held whole in
//! memory and an aborted one leaves nothing behind.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::config::StorageSettings;

#[derive(Debug, Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

/// An upload in progress: write chunks, then `finish` or `abort`.
pub struct BlobUpload {
    writer: WriteMultipart,
}

impl Blobs {
    pub fn new(settings: &StorageSettings) -> Result<Blobs, String> {
        match settings {
            StorageSettings::Directory(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let store = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| format!("cannot use {}: {e}", dir.display()))?;
                Ok(Blobs {
                    store: Arc::new(store),
                    prefix: Path::default(),
                })
            }
            StorageSettings::S3 { url: raw, options } => {
                let url = url::Url::parse(raw).map_err(|e| format!("{raw}: {e}"))?;
                let (store, prefix) = object_store::parse_url_opts(&url, options.clone())
                    .map_err(|e| format!("{raw}: {e}"))?;
                Ok(Blobs {
                    store: Arc::from(store),
                    prefix,
                })
            }
        }
    }

    fn path(&self, key: &str) -> Path {
        self.prefix.clone().join(key)
    }

    pub async fn start_upload(&self, key: &str) -> object_store::Result<BlobUpload> {
        let upload = self.store.put_multipart(&self.path(key)).await?;
        Ok(BlobUpload {
            writer: WriteMultipart::new(upload),
        })
    }

    pub async fn get(&self, key: &str) -> object_store::Result<object_store::GetResult> {
        self.store.get(&self.path(key)).await
    }

    /// Removes a blob; one that is already gone is fine. False when storage failed (logged).
    pub async fn delete(&self, key: &str) -> bool {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => true,
            Err(e) => {
                log::error!("could not delete blob {key}: {e}");
                false
            }
        }
    }
}

impl BlobUpload {
    pub async fn write(&mut self, chunk: &[u8]) -> object_store::Result<()> {
        // Back-pressure: at most a few parts in flight at once.
        self.writer.wait_for_capacity(4).await?;
        self.writer.write(chunk);
        Ok(())
    }

    pub async fn finish(self) -> object_store::Result<()> {
        self.writer.finish().await.map(|_| ())
    }

    pub async fn abort(self) {
        if let Err(e) = self.writer.abort().await {
            log::error!("could not abort an upload: {e}");
        }
    }
}
