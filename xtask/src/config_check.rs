//! Checks the default config files that the packages install in
//! `/etc/herd`. Each must load with its daemon's own config type twice: as
//! shipped, and with every commented-out setting switched on. It must also
//! show every setting that type accepts, so a setting added to the daemon
//! fails this check until it is documented.
//!
//! A commented-out setting is a line where `#` is followed directly by the
//! setting, as in `#listen = [...]`, and prose comments start with `# `, the
//! convention of OpenSSH's `sshd_config`.

use std::path::Path;

use anyhow::Context;
use serde::de::DeserializeOwned;

/// Checks `DIR/managerd.toml` against the manager's config type and
/// `DIR/workerd.toml` against the worker's.
pub fn check_dir(dir: &Path) -> anyhow::Result<()> {
    check_file::<herd_managerd::config::File>(&dir.join("managerd.toml"))?;
    check_file::<herd_workerd::config::File>(&dir.join("workerd.toml"))
}

fn check_file<T: DeserializeOwned>(path: &Path) -> anyhow::Result<()> {
    let shipped = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    toml::from_str::<T>(&shipped)
        .with_context(|| format!("{} does not load as shipped", path.display()))?;

    let all_on = uncomment_settings(&shipped);
    toml::from_str::<T>(&all_on).with_context(|| {
        format!(
            "{} does not load with its commented-out settings switched on",
            path.display()
        )
    })?;

    let documented: toml::Table =
        toml::from_str(&all_on).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let missing: Vec<String> = setting_names::<T>()?
        .into_iter()
        .filter(|name| !documented.contains_key(name))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "{} does not show the settings {}: add each with a comment, commented out \
             with its default unless the packages change it",
            path.display(),
            missing.join(", ")
        );
    }
    Ok(())
}

/// Removes the `#` in front of every commented-out setting, table header
/// and table entry, and keeps prose comments as they are.
fn uncomment_settings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let setting = line
            .strip_prefix('#')
            .filter(|rest| !rest.is_empty() && !rest.starts_with([' ', '#']));
        out.push_str(setting.unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Returns the setting names that config type `T` accepts. serde offers no
/// list of a struct's fields, so this reads them from the error that a type
/// with `deny_unknown_fields` raises for an unknown one: "unknown field
/// `x`, expected one of `a`, `b`".
fn setting_names<T: DeserializeOwned>() -> anyhow::Result<Vec<String>> {
    let error = match toml::from_str::<T>("herd_xtask_unknown_setting = 0") {
        Ok(_) => anyhow::bail!("the config type accepts unknown settings: add deny_unknown_fields"),
        Err(error) => error,
    };
    let message = error.message();
    let expected = message
        .split_once("expected one of ")
        .map(|(_, names)| names)
        .with_context(|| format!("unexpected error for an unknown setting: {message}"))?;
    Ok(expected
        .split(", ")
        .map(|name| name.trim().trim_matches('`').to_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packaging_config() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/config")
    }

    #[test]
    fn shipped_config_files_pass() {
        check_dir(&packaging_config()).unwrap();
    }

    #[test]
    fn uncomment_keeps_prose() {
        let text = "# Endpoints to serve on.\n#listen = [\"unix:///x\"]\n\n#[roles]\n#alice = \"admin\"\n##\nstate_dir = \"/d\"\n";
        assert_eq!(
            uncomment_settings(text),
            "# Endpoints to serve on.\nlisten = [\"unix:///x\"]\n\n[roles]\nalice = \"admin\"\n##\nstate_dir = \"/d\"\n"
        );
    }

    #[test]
    fn setting_names_of_the_manager() {
        let names = setting_names::<herd_managerd::config::File>().unwrap();
        assert!(names.contains(&"listen".to_owned()), "{names:?}");
        assert!(names.contains(&"roles".to_owned()), "{names:?}");
        assert!(!names.iter().any(|name| name.contains('`')), "{names:?}");
    }

    #[test]
    fn undocumented_setting_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("workerd.toml");
        std::fs::write(&path, "#listen = \"unix:///run/herd/workerd.sock\"\n").unwrap();
        let error = check_file::<herd_workerd::config::File>(&path).unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains("does not show the settings manager, id, labels,"),
            "{message}"
        );
        assert!(!message.contains("listen"), "{message}");
    }

    #[test]
    fn misspelled_setting_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("managerd.toml");
        std::fs::write(&path, "#worker_leese = \"10s\"\n").unwrap();
        let error = check_file::<herd_managerd::config::File>(&path).unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains("commented-out settings switched on"),
            "{message}"
        );
        assert!(message.contains("worker_leese"), "{message}");
    }
}
