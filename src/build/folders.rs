//! Folder sessions that outlive one build: what lets builds run together
//! (a bake) upload a folder they share once.
//!
//! Each build normally opens a session per folder and closes it when done.
//! Two builds of one folder at the same time then name two sessions in
//! their local sources, which makes the sources different ops to the
//! daemon, and both upload the folder. Builds given one [`FolderSessions`]
//! name the same session for the same folder: their local sources are the
//! same op, which the daemon's solver runs once for all of them, and a
//! later build finds the upload kept under that session's shared key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::BuildError;
use crate::control::Control;
use crate::fsync::send::{FileSyncService, TransferProgress};
use crate::session::{RunningSession, SessionBuilder};

/// One session per folder, shared by the builds given this value, open
/// until [`FolderSessions::close`]. Clones share the sessions.
#[derive(Clone, Default)]
pub struct FolderSessions {
    open: Arc<tokio::sync::Mutex<BTreeMap<PathBuf, FolderSession>>>,
}

struct FolderSession {
    session: RunningSession,
    progress: Arc<TransferProgress>,
}

impl std::fmt::Debug for FolderSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FolderSessions")
    }
}

impl FolderSessions {
    /// No sessions yet: they open as builds need them.
    pub fn new() -> FolderSessions {
        FolderSessions::default()
    }

    /// The session serving `folder` (absolute), opened on first use, and its
    /// transfer counter.
    pub(crate) async fn session_for(
        &self,
        control: &Control,
        folder: &Path,
        name: &str,
    ) -> Result<(String, Arc<TransferProgress>), BuildError> {
        let mut open = self.open.lock().await;
        if let Some(existing) = open.get(folder) {
            return Ok((existing.session.id().to_string(), existing.progress.clone()));
        }
        let mut builder = SessionBuilder::new(name, crate::session::shared_key_for(folder));
        let file_sync = FileSyncService::for_folder(folder.to_path_buf());
        let progress = file_sync.progress();
        builder.add_service(file_sync.into_server()).map_err(BuildError::Session)?;
        let session = builder.start(control).await.map_err(BuildError::Session)?;
        let id = session.id().to_string();
        open.insert(folder.to_path_buf(), FolderSession { session, progress: progress.clone() });
        Ok((id, progress))
    }

    /// Ends every session; builds still running lose their folders, so call
    /// it once they are done.
    pub async fn close(&self) {
        let sessions = std::mem::take(&mut *self.open.lock().await);
        for (folder, open) in sessions {
            if let Err(error) = open.session.close().await {
                tracing::warn!(
                    folder = %folder.display(),
                    "a folder's session ended badly: {}",
                    crate::error::error_chain(&error)
                );
            }
        }
    }
}
