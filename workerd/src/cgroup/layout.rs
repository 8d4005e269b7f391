//! Discovery of the host's cgroup hierarchies and of the worker's place in
//! them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{CgroupError, read_file};

/// The resource controllers herd uses.
pub const CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "pids", "freezer", "blkio", "io"];

/// Locations of the cgroup hierarchies and of this worker's cgroups.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Folder listing the host's block devices, normally /sys/block.
    pub sys_block: PathBuf,
    /// Directory of the worker's own cgroup in the cgroup2 hierarchy.
    pub v2_own: Option<PathBuf>,
    /// Directory of the worker's parent cgroup in the cgroup2 hierarchy.
    pub v2_parent: Option<PathBuf>,
    /// Controllers the v2 parent may enable for its children.
    pub v2_controllers: Vec<String>,
    /// Directory of the worker's parent cgroup in each v1 hierarchy, by
    /// controller. Co-mounted controllers share one directory.
    pub v1_parents: BTreeMap<String, PathBuf>,
}

/// One cgroup filesystem mount read from mountinfo.
#[derive(Debug, PartialEq)]
struct Mount {
    root: String,
    point: PathBuf,
    /// `None` for cgroup2; the v1 controllers otherwise.
    controllers: Option<Vec<String>>,
}

impl Layout {
    /// Discovers the layout of the running host for a worker whose commands'
    /// cgroups go under `parent`, a path relative to the worker's own cgroup
    /// in each hierarchy.
    pub fn discover(parent: &str) -> Result<Layout, CgroupError> {
        let mountinfo = read_file(PathBuf::from("/proc/self/mountinfo"))?;
        let membership = read_file(PathBuf::from("/proc/self/cgroup"))?;
        Layout::from_tables(&mountinfo, &membership, parent)
    }

    /// Builds the layout from the text of `/proc/self/mountinfo` and
    /// `/proc/self/cgroup`, so tests can describe any host.
    pub fn from_tables(
        mountinfo: &str,
        membership: &str,
        parent: &str,
    ) -> Result<Layout, CgroupError> {
        validate_parent(parent)?;
        let mounts = parse_mountinfo(mountinfo);
        let own = parse_membership(membership);
        let mut layout = Layout {
            sys_block: PathBuf::from("/sys/block"),
            v2_own: None,
            v2_parent: None,
            v2_controllers: Vec::new(),
            v1_parents: BTreeMap::new(),
        };
        for mount in &mounts {
            match &mount.controllers {
                None => {
                    let Some(path) = own.get("") else { continue };
                    let own_dir = join_cgroup(mount, path);
                    layout.v2_parent = Some(own_dir.join(parent));
                    layout.v2_own = Some(own_dir);
                }
                Some(controllers) => {
                    for controller in controllers {
                        let Some(path) = own.get(controller.as_str()) else {
                            continue;
                        };
                        let dir = join_cgroup(mount, path).join(parent);
                        layout.v1_parents.insert(controller.clone(), dir);
                    }
                }
            }
        }
        if layout.v2_parent.is_none() && layout.v1_parents.is_empty() {
            return Err(CgroupError::NoHierarchy {
                path: PathBuf::from("/proc/self/mountinfo"),
            });
        }
        Ok(layout)
    }

    /// Reads which controllers the v2 root offers, skipping those a v1
    /// hierarchy already has (a controller lives in one version only).
    pub fn read_v2_controllers(&mut self, v2_root_controllers: &str) {
        self.v2_controllers = v2_root_controllers
            .split_whitespace()
            .filter(|name| !self.v1_parents.contains_key(*name))
            .map(str::to_owned)
            .collect();
    }

    /// Returns the directory that holds `controller`'s files for a command
    /// named `name`, and whether it is a v2 directory.
    pub fn controller_dir(&self, controller: &str, name: &str) -> Option<(PathBuf, bool)> {
        if let Some(parent) = self.v1_parents.get(controller) {
            return Some((parent.join(name), false));
        }
        let parent = self.v2_parent.as_ref()?;
        self.v2_controllers
            .iter()
            .any(|candidate| candidate == controller)
            .then(|| (parent.join(name), true))
    }

    /// Returns each distinct parent directory: the v2 one first, then one per
    /// v1 hierarchy.
    pub fn parent_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.v2_parent.iter().cloned().collect();
        for dir in self.v1_parents.values() {
            if !dirs.contains(dir) {
                dirs.push(dir.clone());
            }
        }
        dirs
    }
}

fn validate_parent(parent: &str) -> Result<(), CgroupError> {
    let valid = !parent.is_empty()
        && !parent.starts_with('/')
        && parent
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if valid {
        Ok(())
    } else {
        Err(CgroupError::InvalidParent(parent.to_owned()))
    }
}

/// Returns the directory of cgroup `path` under `mount`, allowing for a
/// mount whose root is a subtree of the hierarchy (as inside containers).
fn join_cgroup(mount: &Mount, path: &str) -> PathBuf {
    let relative = path
        .strip_prefix(mount.root.as_str())
        .unwrap_or(path)
        .trim_start_matches('/');
    if relative.is_empty() {
        mount.point.clone()
    } else {
        mount.point.join(relative)
    }
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_mount_line).collect()
}

/// Parses one mountinfo line: `ID PARENT MAJ:MIN ROOT POINT OPTS... - TYPE
/// SOURCE SUPER_OPTS`.
fn parse_mount_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let fields: Vec<&str> = left.split(' ').collect();
    let mut right = right.split(' ');
    let fs_type = right.next()?;
    let super_options = right.nth(1).unwrap_or("");
    let root = unescape(fields.get(3)?);
    let point = PathBuf::from(unescape(fields.get(4)?));
    let controllers = match fs_type {
        "cgroup2" => None,
        "cgroup" => Some(
            super_options
                .split(',')
                .filter(|option| CONTROLLERS.contains(option))
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        ),
        _ => return None,
    };
    if controllers.as_ref().is_some_and(Vec::is_empty) {
        return None;
    }
    Some(Mount {
        root,
        point,
        controllers,
    })
}

/// Decodes the octal escapes (`\040` for a space) mountinfo uses.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = bytes.get(index + 1..index + 4);
        let code = escape
            .filter(|_| bytes[index] == b'\\')
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match code {
            Some(code) => {
                out.push(code);
                index += 4;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Maps each controller (and "" for cgroup v2) to the process's cgroup path.
fn parse_membership(text: &str) -> BTreeMap<String, String> {
    let mut own = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            own.insert(String::new(), path.to_owned());
        }
        for controller in controllers.split(',').filter(|c| !c.is_empty()) {
            own.insert(controller.to_owned(), path.to_owned());
        }
    }
    own
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
30 23 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw
34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/pids rw,nosuid shared:16 - cgroup cgroup rw,pids
37 30 0:33 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,xattr,name=systemd
";

    const HYBRID_MEMBERSHIP: &str = "\
9:name=systemd:/
4:memory:/sessions/a
3:cpu,cpuacct:/
2:pids:/
0::/
";

    #[test]
    fn hybrid_layout_uses_both_versions() {
        let layout = Layout::from_tables(HYBRID_MOUNTINFO, HYBRID_MEMBERSHIP, "herd").unwrap();
        assert_eq!(
            layout.v2_parent,
            Some(PathBuf::from("/sys/fs/cgroup/unified/herd"))
        );
        assert_eq!(
            layout.v1_parents["memory"],
            PathBuf::from("/sys/fs/cgroup/memory/sessions/a/herd")
        );
        assert_eq!(
            layout.v1_parents["cpuacct"],
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/herd")
        );
        assert!(!layout.v1_parents.contains_key("name=systemd"));
        assert_eq!(layout.parent_dirs().len(), 4);
    }

    #[test]
    fn pure_v2_layout_nests_under_own_cgroup() {
        let mountinfo = "29 23 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        let membership = "0::/system.slice/herd-workerd.service\n";
        let mut layout = Layout::from_tables(mountinfo, membership, "herd").unwrap();
        layout.read_v2_controllers("cpuset cpu io memory pids\n");
        assert_eq!(
            layout.v2_parent,
            Some(PathBuf::from(
                "/sys/fs/cgroup/system.slice/herd-workerd.service/herd"
            ))
        );
        let (dir, v2) = layout.controller_dir("memory", "p1").unwrap();
        assert!(v2);
        assert!(dir.ends_with("herd-workerd.service/herd/p1"));
        assert!(layout.controller_dir("freezer", "p1").is_none());
    }

    #[test]
    fn v1_controllers_win_over_v2() {
        let mut layout = Layout::from_tables(HYBRID_MOUNTINFO, HYBRID_MEMBERSHIP, "h").unwrap();
        layout.read_v2_controllers("memory hugetlb");
        assert_eq!(layout.v2_controllers, vec!["hugetlb".to_owned()]);
        let (_, v2) = layout.controller_dir("memory", "p").unwrap();
        assert!(!v2);
    }

    #[test]
    fn container_mount_root_is_stripped() {
        let mountinfo = "40 30 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let membership = "0::/docker/abc/inner\n";
        let layout = Layout::from_tables(mountinfo, membership, "herd").unwrap();
        assert_eq!(
            layout.v2_parent,
            Some(PathBuf::from("/sys/fs/cgroup/inner/herd"))
        );
    }

    #[test]
    fn escaped_mount_points_decode() {
        assert_eq!(unescape(r"/mnt/with\040space"), "/mnt/with space");
        assert_eq!(unescape(r"trailing\04"), r"trailing\04");
    }

    #[test]
    fn bad_parents_are_rejected() {
        for bad in ["", "/abs", "a/../b", "a//b", "."] {
            let error = Layout::from_tables(HYBRID_MOUNTINFO, HYBRID_MEMBERSHIP, bad).unwrap_err();
            assert!(matches!(error, CgroupError::InvalidParent(_)), "{bad:?}");
        }
    }

    #[test]
    fn no_hierarchy_is_an_error() {
        let error = Layout::from_tables("1 0 0:1 / / rw - ext4 /dev/vda rw\n", "0::/\n", "h");
        assert!(matches!(error, Err(CgroupError::NoHierarchy { .. })));
    }
}
