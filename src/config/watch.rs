//! Following the config file's changes, so a running server reloads what was saved.

use std::path::Path;
use std::time::Duration;

/// Watches the config file's directory (editors save by renaming a new file over the old one) and signals each
/// change of the file. Where inotify is out of instances or watches, it polls every two seconds instead.
pub fn watch(
    path: &Path,
) -> notify::Result<(
    Box<dyn notify::Watcher + Send>,
    tokio::sync::mpsc::Receiver<()>,
)> {
    use notify::Watcher;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let name = path.file_name().map(|n| n.to_os_string());
    let handler = move |event: notify::Result<notify::Event>| {
        // Reading the file is an event too (access): only a change counts, or every reload would cause the next.
        if let Ok(event) = event
            && (event.kind.is_create() || event.kind.is_modify() || event.kind.is_remove())
            && event
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
        {
            // The callback runs on notify's thread: never block it.
            let _ = tx.try_send(());
        }
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let inotify = notify::recommended_watcher(handler.clone()).and_then(|mut w| {
        w.watch(dir, notify::RecursiveMode::NonRecursive)?;
        Ok(w)
    });
    let watcher: Box<dyn Watcher + Send> = match inotify {
        Ok(w) => Box::new(w),
        Err(e) => {
            tracing::warn!("{e}: polling {} for changes instead", dir.display());
            let config = notify::Config::default().with_poll_interval(Duration::from_secs(2));
            let mut w = notify::PollWatcher::new(handler, config)?;
            w.watch(dir, notify::RecursiveMode::NonRecursive)?;
            Box::new(w)
        }
    };
    Ok((watcher, rx))
}
