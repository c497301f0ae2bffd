//! Creating the nodes' data directories.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use crate::{Error, Resolved};

impl Resolved {
    /// Creates every node's data directory: `<run_dir>/data/<node>`, empty, or a recursive copy
    /// of its `copy_from` directory (symlinks copied as symlinks, permission bits kept; the
    /// source is only read). Creates the run directory if needed. Fails if a data directory
    /// already exists, or if a source contains the run directory or a special file (socket,
    /// FIFO, device).
    pub fn prepare_data_dirs(&self) -> Result<(), Error> {
        for node in &self.nodes {
            let Some(dd) = &node.data_dir else { continue };
            let parent = dd
                .path
                .parent()
                .expect("<run_dir>/data/<node> has a parent");
            fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
            match &dd.copy_from {
                None => fs::create_dir(&dd.path).map_err(|e| {
                    Error::io(
                        format!(
                            "node `{}`: creating data directory {}",
                            node.name,
                            dd.path.display()
                        ),
                        e,
                    )
                })?,
                Some(src) => {
                    let context = format!(
                        "node `{}`: copying {} to data directory {}",
                        node.name,
                        src.display(),
                        dd.path.display()
                    );
                    let canon_src = fs::canonicalize(src).map_err(|e| Error::io(&context, e))?;
                    let canon_parent =
                        fs::canonicalize(parent).map_err(|e| Error::io(&context, e))?;
                    if canon_parent.starts_with(&canon_src) {
                        return Err(Error::io(
                            context,
                            io::Error::new(
                                io::ErrorKind::InvalidInput,
                                "the source directory contains the run directory",
                            ),
                        ));
                    }
                    copy_dir(src, &dd.path).map_err(|e| Error::io(context, e))?;
                }
            }
        }
        Ok(())
    }
}

/// Copies the directory `src` to `dst` (which must not exist), recursively.
fn copy_dir(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::metadata(src)?;
    fs::create_dir(dst)?;
    // Writable while filling it; its own mode is restored at the end.
    fs::set_permissions(dst, fs::Permissions::from_mode(0o700))?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let ft = entry.file_type()?;
        if ft.is_symlink() {
            symlink(fs::read_link(&from)?, &to)?;
        } else if ft.is_dir() {
            copy_dir(&from, &to)?;
        } else if ft.is_file() {
            // Copies the permission bits too.
            fs::copy(&from, &to)?;
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a file, directory or symlink", from.display()),
            ));
        }
    }
    fs::set_permissions(
        dst,
        fs::Permissions::from_mode(meta.permissions().mode() & 0o7777),
    )
}
