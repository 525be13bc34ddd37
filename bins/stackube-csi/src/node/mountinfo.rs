//! `/proc/self/mountinfo`, read: which file system is mounted where, from what.

/// One mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mount {
    /// Where it is mounted.
    pub(crate) target: String,
    /// Its file system type (`ext4`, `fuse.rbd-fuse`, ...).
    pub(crate) fs_type: String,
    /// What is mounted (`/dev/loop3`, `rbd-fuse`, ...).
    pub(crate) source: String,
}

/// What this process's mount namespace has mounted at `path` (the topmost mount), if anything.
pub(crate) fn source_at(path: &std::path::Path) -> std::io::Result<Option<String>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(parse(&text)
        .into_iter()
        .rev()
        .find(|m| std::path::Path::new(&m.target) == path)
        .map(|m| m.source))
}

/// The mounts of a `mountinfo` text (lines it cannot read are skipped).
pub(crate) fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    let (left, right) = line.split_once(" - ")?;
    let target = left.split(' ').nth(4)?;
    let mut right = right.split(' ');
    let fs_type = right.next()?;
    let source = right.next()?;
    Some(Mount {
        target: unescape(target),
        fs_type: fs_type.to_owned(),
        source: unescape(source),
    })
}

/// The kernel writes space, tab, newline and backslash in paths as `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_read_with_their_escapes() {
        let text = "\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
301 22 0:55 / /var/lib/stackube-csi/rbd/v-1 rw,nosuid,nodev,relatime shared:150 - fuse.rbd-fuse rbd-fuse rw,user_id=0,group_id=0
302 22 7:3 / /var/lib/kubelet/a\\040b/globalmount rw,relatime shared:151 - ext4 /dev/loop3 rw
garbage
";
        assert_eq!(
            parse(text),
            vec![
                Mount {
                    target: "/".into(),
                    fs_type: "ext4".into(),
                    source: "/dev/vda".into()
                },
                Mount {
                    target: "/var/lib/stackube-csi/rbd/v-1".into(),
                    fs_type: "fuse.rbd-fuse".into(),
                    source: "rbd-fuse".into()
                },
                Mount {
                    target: "/var/lib/kubelet/a b/globalmount".into(),
                    fs_type: "ext4".into(),
                    source: "/dev/loop3".into()
                },
            ]
        );
    }
}
