//! Where history lives: a path, a folder, a glob, or a `file://`, `s3://` or `gs://` URL,
//! listed through DataFusion's [`ListingTableUrl`] and read through `object_store`, so a
//! local folder and a bucket prefix are one code path. Object-store credentials come from
//! the environment, as the cloud SDKs read them (`AWS_*`, `GOOGLE_*`).

use std::sync::Arc;

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::object_store::path::Path as StorePath;
use datafusion::object_store::ObjectStore;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;

use crate::error::OfflineError;

/// The formats history and spines are read in, told by a file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    /// One JSON object per line (`.ndjson`, `.jsonl`, `.json`).
    Ndjson,
    /// With a header row (`.csv`).
    Csv,
}

impl Format {
    /// The format of a file named `name`, if its extension says one.
    pub fn of(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        let ext = lower.rsplit('.').next()?;
        match ext {
            "parquet" | "pq" => Some(Format::Parquet),
            "ndjson" | "jsonl" | "json" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    /// The extension DataFusion's readers are told to expect.
    pub(crate) fn extension(self, name: &str) -> String {
        match name.rsplit_once('.') {
            Some((_, ext)) => format!(".{ext}"),
            None => match self {
                Format::Parquet => ".parquet".into(),
                Format::Ndjson => ".ndjson".into(),
                Format::Csv => ".csv".into(),
            },
        }
    }
}

/// One file found at a location.
#[derive(Debug, Clone)]
pub struct HistoryFile {
    /// Its full URL (what DataFusion's readers take).
    pub url: String,
    /// Its path in its store.
    pub(crate) path: StorePath,
    pub format: Format,
    pub size: u64,
}

/// Lists the files at `location` (sorted by path, so a folder of daily files reads in day
/// order), registering an object store for `s3://` and `gs://` URLs. A file whose format
/// the extension does not tell is an error naming it; an empty location is one too.
pub async fn list(
    ctx: &SessionContext,
    location: &str,
) -> Result<(Arc<dyn ObjectStore>, Vec<HistoryFile>), OfflineError> {
    let url = ListingTableUrl::parse(location).map_err(|e| OfflineError::read(location, e))?;
    register_store(ctx, &url, location)?;
    let store = ctx
        .runtime_env()
        .object_store(url.object_store())
        .map_err(|e| OfflineError::read(location, e))?;
    let state = ctx.state();
    let metas: Vec<_> = url
        .list_all_files(&state, store.as_ref(), "")
        .await
        .map_err(|e| OfflineError::read(location, e))?
        .try_collect()
        .await
        .map_err(|e| OfflineError::read(location, e))?;
    let base = url.object_store();
    let mut files = Vec::with_capacity(metas.len());
    for meta in metas {
        let name = meta.location.to_string();
        if name
            .rsplit('/')
            .next()
            .is_some_and(|f| f.starts_with('.') || f.starts_with('_'))
        {
            continue; // hidden files and markers such as _SUCCESS
        }
        let format = Format::of(&name).ok_or_else(|| {
            OfflineError::read(
                format!("{}{name}", base.as_str()),
                "cannot tell its format: name it .parquet, .ndjson, .jsonl, .json or .csv",
            )
        })?;
        files.push(HistoryFile {
            url: format!("{}{name}", base.as_str()),
            path: meta.location,
            format,
            size: meta.size,
        });
    }
    if files.is_empty() {
        return Err(OfflineError::read(location, "no file there"));
    }
    files.sort_by(|a, b| a.url.cmp(&b.url));
    Ok((store, files))
}

/// Registers the object store a `s3://BUCKET` or `gs://BUCKET` URL needs, configured from
/// the environment; `file://` is always registered.
fn register_store(
    ctx: &SessionContext,
    url: &ListingTableUrl,
    location: &str,
) -> Result<(), OfflineError> {
    let bucket = url.get_url().host_str().unwrap_or_default().to_string();
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(&bucket)
                .build()
                .map_err(|e| OfflineError::read(location, e))?,
        ),
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(&bucket)
                .build()
                .map_err(|e| OfflineError::read(location, e))?,
        ),
        "file" => return Ok(()),
        other => {
            return Err(OfflineError::read(
                location,
                format!(
                "scheme {other:?} is not read here: use a path, or a file://, s3:// or gs:// URL"
            ),
            ))
        }
    };
    ctx.register_object_store(url.object_store().as_ref(), store);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::of("a/b.parquet"), Some(Format::Parquet));
        assert_eq!(Format::of("x.JSONL"), Some(Format::Ndjson));
        assert_eq!(Format::of("x.csv"), Some(Format::Csv));
        assert_eq!(Format::of("x.txt"), None);
        assert_eq!(Format::of("noext"), None);
    }

    #[tokio::test]
    async fn a_folder_lists_its_files_in_order_and_skips_markers() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["day-2.ndjson", "day-1.ndjson", "_SUCCESS", ".hidden.ndjson"] {
            std::fs::write(dir.path().join(name), "{}\n").unwrap();
        }
        let ctx = crate::read::ordered_context();
        let (_, files) = list(&ctx, &format!("{}/", dir.path().display()))
            .await
            .unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.url.rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(names, ["day-1.ndjson", "day-2.ndjson"]);
        let glob = format!("{}/day-2*", dir.path().display());
        let (_, files) = list(&ctx, &glob).await.unwrap();
        assert_eq!(files.len(), 1);
    }

    #[tokio::test]
    async fn a_file_of_unknown_format_or_nothing_at_all_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("events.txt"), "x").unwrap();
        let ctx = crate::read::ordered_context();
        let err = list(&ctx, &format!("{}/", dir.path().display()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("events.txt"), "{err}");
        let err = list(&ctx, &format!("{}/none/", dir.path().display()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no file"), "{err}");
    }
}
