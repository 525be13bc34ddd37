//! The seed's `/etc/kubernetes/cinder.conf`, which its FlexVolume driver reads on every node:
//!
//! ```ini
//! [Global]
//! auth-url = _AUTH_URL_
//! username = _USERNAME_
//! password = _PASSWORD_
//! tenant-name = _TENANT_NAME_
//! region = _REGION_
//! [RBD]
//! keyring = _KEYRING_
//! ```
//!
//! The seed's driver read it with gcfg (git-config syntax); this reads the same files:
//! - section and key names are case-insensitive; blank lines and lines starting with `#` or
//!   `;` are comments, and so is the rest of a line from a `#` or `;` that follows a blank
//!   (`region = RegionOne  # ours`), so an unquoted `pa#ss` stays whole;
//! - a value is trimmed, except what is between double quotes, where `#` and `;` are plain
//!   characters and `\"`, `\\`, `\n` and `\t` are escapes: a password with leading or
//!   trailing blanks, or with ` #`, is written `password = " pa #ss "`;
//! - `[Global]` holds the keys of the shared ConfigMap with the same names (`auth-url`,
//!   `username`, `password`, `tenant-name`, `region`, `user-domain-name`,
//!   `project-domain-name`) and is validated the same way, into a [`CloudConfig`]; the
//!   gophercloud-era `domain-name` is the default of both domain names;
//! - `[RBD]` holds `keyring` ([`RbdKeyring`]).
//!
//! An unknown section or key, a key given twice, or a line that is none of these is refused,
//! naming it (`[Global] tenant-id: unknown key`). Errors never hold the password or the key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::{CloudConfig, ConfigError, Keys, Secret};

/// Where the seed's driver reads the file.
pub const CINDER_CONF_PATH: &str = "/etc/kubernetes/cinder.conf";

const GLOBAL: &str = "Global";
const RBD: &str = "RBD";
const GLOBAL_KEYS: [&str; 8] = [
    "auth-url",
    "username",
    "password",
    "tenant-name",
    "region",
    "domain-name",
    "user-domain-name",
    "project-domain-name",
];
const RBD_KEYS: [&str; 1] = ["keyring"];

/// The file, read.
#[derive(Clone, Debug, PartialEq)]
pub struct CinderConf {
    /// `[Global]`: the OpenStack connection.
    pub cloud: CloudConfig,
    /// `[RBD] keyring`.
    pub keyring: RbdKeyring,
}

/// `[RBD] keyring`: the Ceph key of the user Cinder's RBD backend maps images as.
///
/// The seed's value was the key itself (its driver handed it to the runtime as the RBD
/// image's key; the ConfigMap key `keyring` holds one too), while Stackube's CSI node reads a
/// keyring *file* (`/etc/ceph/ceph.client.cinder.keyring`). Both are accepted, and cannot be
/// mistaken for each other: a file is given by its absolute path, and a cephx key is base64
/// (as `ceph auth get-key` prints it), which starts with `AQ`, never `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RbdKeyring {
    /// A keyring file, by its absolute path.
    File(PathBuf),
    /// The key itself (hand it to Ceph in a file, never on a command line).
    Key(Secret),
}

/// What is wrong with the file; it names the section and key (or the line), never a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CinderConfError {
    /// A line that is not a comment, a `[section]` or `key = value`.
    #[error("line {line}: {why}")]
    Syntax {
        /// 1-based.
        line: usize,
        /// What was expected.
        why: &'static str,
    },
    /// A section other than `[Global]` and `[RBD]`.
    #[error("[{name}]: not a section of cinder.conf (it has [Global] and [RBD]), line {line}")]
    UnknownSection {
        /// The section's name as written.
        name: String,
        /// 1-based.
        line: usize,
    },
    /// A key the section does not have.
    #[error("[{section}] {key}: unknown key, line {line} ([{section}] has {known})")]
    UnknownKey {
        /// `Global` or `RBD`.
        section: &'static str,
        /// The key as written.
        key: String,
        /// 1-based.
        line: usize,
        /// The keys the section has.
        known: String,
    },
    /// A key set twice in its section.
    #[error("[{section}] {key}: set twice, on lines {first} and {line}")]
    Duplicate {
        /// `Global` or `RBD`.
        section: &'static str,
        /// The key.
        key: &'static str,
        /// Where it was set first.
        first: usize,
        /// Where again.
        line: usize,
    },
    /// A required key is missing or empty.
    #[error("[{section}] {key}: required")]
    Missing {
        /// `Global` or `RBD`.
        section: &'static str,
        /// The key.
        key: String,
    },
    /// A value that does not parse, or is not what the key takes.
    #[error("[{section}] {key}: {why}")]
    Invalid {
        /// `Global` or `RBD`.
        section: &'static str,
        /// The key.
        key: String,
        /// What is wrong (never the value of the password or the key).
        why: String,
    },
}

impl CinderConf {
    /// Reads the file's text.
    pub fn parse(text: &str) -> Result<CinderConf, CinderConfError> {
        let values = read_ini(text)?;
        let get = |section: &'static str, key: &'static str| {
            values.get(&(section, key)).map(|(_, value)| value.as_str())
        };

        // [Global] is handed to the ConfigMap's validation under the same key names.
        let mut map = BTreeMap::new();
        for key in GLOBAL_KEYS {
            if let Some(value) = get(GLOBAL, key)
                && key != "domain-name"
            {
                map.insert(key.to_owned(), value.to_owned());
            }
        }
        if let Some(domain) = get(GLOBAL, "domain-name") {
            for key in ["user-domain-name", "project-domain-name"] {
                map.entry(key.to_owned())
                    .or_insert_with(|| domain.to_owned());
            }
        }
        let cloud = Keys::new(&map)
            .and_then(|keys| CloudConfig::from_keys(&keys))
            .map_err(global_error)?;

        let keyring =
            get(RBD, "keyring")
                .filter(|v| !v.is_empty())
                .ok_or(CinderConfError::Missing {
                    section: RBD,
                    key: "keyring".into(),
                })?;
        let keyring = if keyring.starts_with('/') {
            RbdKeyring::File(PathBuf::from(keyring))
        } else if keyring
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            RbdKeyring::Key(Secret::new(keyring))
        } else {
            return Err(CinderConfError::Invalid {
                section: RBD,
                key: "keyring".into(),
                why: "neither the absolute path of a keyring file nor a cephx key (base64, as \
                      `ceph auth get-key` prints it)"
                    .into(),
            });
        };
        Ok(CinderConf { cloud, keyring })
    }
}

/// The ConfigMap's error for a `[Global]` key, named as this file names it.
fn global_error(error: ConfigError) -> CinderConfError {
    match error {
        ConfigError::Missing(key) => CinderConfError::Missing {
            section: GLOBAL,
            key: key.to_owned(),
        },
        ConfigError::Invalid { key, why } => CinderConfError::Invalid {
            section: GLOBAL,
            key,
            why,
        },
        // Only the keys of GLOBAL_KEYS are handed over, and the ConfigMap knows them all.
        ConfigError::Unknown { key, .. } => CinderConfError::UnknownKey {
            section: GLOBAL,
            key,
            line: 0,
            known: GLOBAL_KEYS.join(", "),
        },
    }
}

/// `(section, key)` → `(line, value)`, sections and keys as the constants spell them.
type Values = BTreeMap<(&'static str, &'static str), (usize, String)>;

/// The file's sections and keys, each checked to be one of ours and set once.
fn read_ini(text: &str) -> Result<Values, CinderConfError> {
    let mut values = Values::new();
    let mut section: Option<&'static str> = None;
    for (i, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let (name, rest) = header.split_once(']').ok_or(CinderConfError::Syntax {
                line: line_no,
                why: "a section header without its closing `]`",
            })?;
            let rest = rest.trim_start();
            if !(rest.is_empty() || rest.starts_with('#') || rest.starts_with(';')) {
                return Err(CinderConfError::Syntax {
                    line: line_no,
                    why: "text after a section header",
                });
            }
            let name = name.trim();
            section = Some(
                [GLOBAL, RBD]
                    .into_iter()
                    .find(|s| s.eq_ignore_ascii_case(name))
                    .ok_or_else(|| CinderConfError::UnknownSection {
                        name: name.to_owned(),
                        line: line_no,
                    })?,
            );
            continue;
        }
        // Only the key is looked at before the section is known: the line may be a password.
        let (key, raw) = line.split_once('=').ok_or(CinderConfError::Syntax {
            line: line_no,
            why: "expected `key = value`, a `[section]` or a comment",
        })?;
        let key = key.trim();
        let section = section.ok_or(CinderConfError::Syntax {
            line: line_no,
            why: "a key before the first section ([Global] or [RBD])",
        })?;
        let known: &[&'static str] = if section == GLOBAL {
            &GLOBAL_KEYS
        } else {
            &RBD_KEYS
        };
        let name = known
            .iter()
            .copied()
            .find(|k| k.eq_ignore_ascii_case(key))
            .ok_or_else(|| CinderConfError::UnknownKey {
                section,
                key: key.to_owned(),
                line: line_no,
                known: known.join(", "),
            })?;
        let value = value(raw).map_err(|why| CinderConfError::Invalid {
            section,
            key: name.to_owned(),
            why: format!("{why}, line {line_no}"),
        })?;
        if let Some((first, _)) = values.insert((section, name), (line_no, value)) {
            return Err(CinderConfError::Duplicate {
                section,
                key: name,
                first,
                line: line_no,
            });
        }
    }
    Ok(values)
}

/// The value after `=`: trimmed, quotes removed, escapes in quotes applied, a trailing comment
/// dropped.
fn value(raw: &str) -> Result<String, &'static str> {
    let mut out = String::new();
    // How much of `out` to keep: up to its last quoted or non-blank character.
    let mut keep = 0;
    let mut quoted = false;
    let mut after_blank = true;
    let mut chars = raw.trim_start().chars();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' => quoted = false,
                '\\' => out.push(match chars.next() {
                    Some('"') => '"',
                    Some('\\') => '\\',
                    Some('n') => '\n',
                    Some('t') => '\t',
                    _ => return Err("an unknown escape between double quotes (\\\" \\\\ \\n \\t)"),
                }),
                c => out.push(c),
            }
            keep = out.len();
            after_blank = false;
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                keep = out.len();
            }
            '#' | ';' if after_blank => break,
            c => {
                out.push(c);
                if !c.is_whitespace() {
                    keep = out.len();
                }
                after_blank = c.is_whitespace();
            }
        }
    }
    if quoted {
        return Err("a double quote is not closed");
    }
    out.truncate(keep);
    Ok(out)
}

impl fmt::Display for RbdKeyring {
    /// The file's path, or `[REDACTED]` for a key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RbdKeyring::File(path) => write!(f, "{}", path.display()),
            RbdKeyring::Key(_) => f.write_str("[REDACTED]"),
        }
    }
}

impl CinderConf {
    /// The file's text (what the stackube-csi-node DaemonSet installs beside the driver): every
    /// value quoted, so that [`CinderConf::parse`] reads back the same configuration. It holds
    /// the password and the key: write it readable by root only.
    pub fn render(&self) -> String {
        let cloud = &self.cloud;
        let mut out = String::from(
            "# Written by stackube-csi (the stackube-csi-node DaemonSet) from the stackube-config \
             ConfigMap and its Secrets; it is rewritten when the DaemonSet starts.\n[Global]\n",
        );
        let mut put = |key: &str, value: &str| {
            out.push_str(&format!("{key} = {}\n", quote(value)));
        };
        put("auth-url", &cloud.auth_url);
        put("username", &cloud.username);
        put("password", cloud.password.expose());
        put("tenant-name", &cloud.tenant_name);
        if let Some(region) = &cloud.region {
            put("region", region);
        }
        put("user-domain-name", &cloud.user_domain_name);
        put("project-domain-name", &cloud.project_domain_name);
        out.push_str("[RBD]\n");
        let keyring = match &self.keyring {
            RbdKeyring::File(path) => path.display().to_string(),
            RbdKeyring::Key(key) => key.expose().to_owned(),
        };
        out.push_str(&format!("keyring = {}\n", quote(&keyring)));
        out
    }
}

/// `value` in double quotes, with the escapes [`value`] reads.
fn quote(value: &str) -> String {
    let mut out = String::from('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's example, verbatim.
    const SEED: &str = "[Global]
auth-url = _AUTH_URL_
username = _USERNAME_
password = _PASSWORD_
tenant-name = _TENANT_NAME_
region = _REGION_
[RBD]
keyring = _KEYRING_
";
    const KEY: &str = "AQBZU5lZ/Z7lEBAAJuC17RYjjqIUANs2QVn7pw==";
    const PASSWORD: &str = "s3cr3t #pa55";

    fn seed_filled() -> String {
        SEED.replace("_AUTH_URL_", "https://192.168.128.66/identity_admin/v3")
            .replace("_KEYRING_", KEY)
    }

    /// A file as a person writes it: comments, blanks, case, CRLF, quotes, a keyring file.
    fn written() -> String {
        format!(
            "\u{feff}# cinder.conf for stackube's flexvolume driver\r\n\
             \r\n\
             [global]   ; the cloud\r\n\
             \tAuth-URL=https://keystone.example:5000/v3   # v3 only\r\n\
             username = admin\r\n\
             password = \" {PASSWORD} \"\r\n\
             tenant-name = admin\r\n\
             ; region = RegionTwo\r\n\
             region = RegionOne\r\n\
             domain-name = Example\r\n\
             project-domain-name = Tenants\r\n\
             [ rbd ]\r\n\
             keyring = /etc/ceph/ceph.client.cinder.keyring\r\n"
        )
    }

    #[test]
    fn the_seeds_text_is_read_and_its_placeholders_refused_until_filled() {
        let cases: Vec<(&str, String, Result<(), &str>)> = vec![
            (
                "verbatim: an auth-url placeholder is no URL",
                SEED.to_owned(),
                Err("[Global] auth-url: `_AUTH_URL_` is not an http(s) URL"),
            ),
            (
                "auth-url filled: a keyring placeholder is no key",
                SEED.replace("_AUTH_URL_", "https://k/v3"),
                Err(
                    "[RBD] keyring: neither the absolute path of a keyring file nor a cephx key \
                     (base64, as `ceph auth get-key` prints it)",
                ),
            ),
            ("both filled", seed_filled(), Ok(())),
        ];
        for (name, text, want) in cases {
            let got = CinderConf::parse(&text)
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_owned), "{name}");
        }

        let conf = CinderConf::parse(&seed_filled()).unwrap();
        assert_eq!(
            conf.cloud.auth_url,
            "https://192.168.128.66/identity_admin/v3"
        );
        assert_eq!(conf.cloud.username, "_USERNAME_");
        assert_eq!(conf.cloud.password.expose(), "_PASSWORD_");
        assert_eq!(conf.cloud.tenant_name, "_TENANT_NAME_");
        assert_eq!(conf.cloud.region.as_deref(), Some("_REGION_"));
        assert_eq!(conf.cloud.user_domain_name, "Default");
        assert_eq!(conf.cloud.project_domain_name, "Default");
        assert_eq!(conf.keyring, RbdKeyring::Key(Secret::new(KEY)));
    }

    #[test]
    fn comments_quotes_case_and_domains_are_read_as_gcfg_would() {
        let conf = CinderConf::parse(&written()).unwrap();
        assert_eq!(conf.cloud.auth_url, "https://keystone.example:5000/v3");
        assert_eq!(conf.cloud.password.expose(), format!(" {PASSWORD} "));
        assert_eq!(conf.cloud.region.as_deref(), Some("RegionOne"));
        // domain-name is the default of both; the specific key wins.
        assert_eq!(conf.cloud.user_domain_name, "Example");
        assert_eq!(conf.cloud.project_domain_name, "Tenants");
        assert_eq!(
            conf.keyring,
            RbdKeyring::File("/etc/ceph/ceph.client.cinder.keyring".into())
        );
        assert_eq!(
            conf.keyring.to_string(),
            "/etc/ceph/ceph.client.cinder.keyring"
        );
    }

    #[test]
    fn values_are_trimmed_unquoted_and_stripped_of_comments() {
        let cases: Vec<(&str, Result<&str, &str>)> = vec![
            ("plain", Ok("plain")),
            ("  padded  ", Ok("padded")),
            ("with inner  blanks", Ok("with inner  blanks")),
            ("pa#ss;word", Ok("pa#ss;word")),
            ("value # comment", Ok("value")),
            ("value\t; comment", Ok("value")),
            ("# all comment", Ok("")),
            ("", Ok("")),
            ("\" kept \"", Ok(" kept ")),
            ("\"a # b ; c\"  # comment", Ok("a # b ; c")),
            ("\"q\\\"uote\\\\ \\t\\n\"", Ok("q\"uote\\ \t\n")),
            ("pa\"rt ly\"quoted", Ok("part lyquoted")),
            ("back\\slash", Ok("back\\slash")),
            ("\"open", Err("a double quote is not closed")),
            (
                "\"bad \\x escape\"",
                Err("an unknown escape between double quotes (\\\" \\\\ \\n \\t)"),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(value(raw), want.map(str::to_owned), "{raw:?}");
        }
    }

    #[test]
    fn errors_name_the_section_and_key_or_the_line() {
        let seed = seed_filled();
        let cases: Vec<(String, &str)> = vec![
            (
                seed.replace("password = _PASSWORD_\n", ""),
                "[Global] password: required",
            ),
            (
                seed.replace("username = _USERNAME_", "username ="),
                "[Global] username: required",
            ),
            (
                seed.replace("_USERNAME_", "\"_USERNAME_"),
                "[Global] username: a double quote is not closed, line 3",
            ),
            (
                seed.replace("[RBD]\nkeyring = ", "[RBD]\n# keyring = "),
                "[RBD] keyring: required",
            ),
            (
                seed.replace(
                    "https://192.168.128.66/identity_admin/v3",
                    "http://k:5000/v2.0",
                ),
                "[Global] auth-url: Keystone v2.0 is gone",
            ),
            (
                seed.replace("region", "tenant-id = x\nregion"),
                "[Global] tenant-id: unknown key, line 6 ([Global] has auth-url, username, \
                 password, tenant-name, region, domain-name, user-domain-name, \
                 project-domain-name)",
            ),
            (
                seed.replace("keyring =", "keyfile ="),
                "[RBD] keyfile: unknown key, line 8 ([RBD] has keyring)",
            ),
            (
                seed.replace("region", "username = other\nregion"),
                "[Global] username: set twice, on lines 3 and 6",
            ),
            (
                format!("{seed}[BlockStorage]\nbs-version = v3\n"),
                "[BlockStorage]: not a section of cinder.conf (it has [Global] and [RBD]), line 9",
            ),
            (
                format!("[Global \n{seed}"),
                "line 1: a section header without its closing `]`",
            ),
            (
                format!("[Global] x\n{seed}"),
                "line 1: text after a section header",
            ),
            (
                format!("auth-url = x\n{seed}"),
                "line 1: a key before the first section",
            ),
            (
                seed.replace("region = _REGION_", "region"),
                "line 6: expected `key = value`",
            ),
            (
                seed.replace(KEY, "ceph.client.cinder.keyring"),
                "[RBD] keyring: neither the absolute path",
            ),
        ];
        for (text, want) in cases {
            let err = CinderConf::parse(&text).unwrap_err().to_string();
            assert!(err.starts_with(want), "got `{err}`, want `{want}...`");
        }
    }

    #[test]
    fn the_password_and_the_key_are_never_printed() {
        let text = written().replace("/etc/ceph/ceph.client.cinder.keyring", KEY);
        let conf = CinderConf::parse(&text).unwrap();
        let shown = format!("{conf:?} {}", conf.keyring);
        assert!(!shown.contains("s3cr3t") && !shown.contains(KEY), "{shown}");
        assert_eq!(conf.keyring, RbdKeyring::Key(Secret::new(KEY)));

        let password = format!("password = \" {PASSWORD} \"");
        let bad = [
            text.replace(&password, &format!("{password}\n{password}")),
            text.replace(&password, &format!("password = \"{PASSWORD}")),
            text.replace(&password, &format!("password = \"{PASSWORD}\\q\"")),
            text.replace(&password, &format!("password {PASSWORD}")),
            text.replace(&password, "")
                .replace("[global]", &format!("{PASSWORD}\n[global]")),
            text.replace(KEY, &format!("{KEY}.")),
            text.replace(KEY, &format!("\"{KEY}")),
        ];
        for text in bad {
            let err = CinderConf::parse(&text).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("s3cr3t") && !shown.contains(KEY), "{shown}");
        }
    }
    #[test]
    fn a_rendered_file_reads_back_the_same() {
        let text = "[Global]\nauth-url = http://127.0.0.1:5000/v3\nusername = admin\n\
                    password = \" p#a\\\"ss\\\\ \"\ntenant-name = admin\nregion = RegionOne\n\
                    [RBD]\nkeyring = AQBzc2VjcmV0a2V5Cg==\n";
        let conf = CinderConf::parse(text).expect("the example");
        let rendered = conf.render();
        assert_eq!(CinderConf::parse(&rendered).expect("its rendering"), conf);
        let file = CinderConf {
            keyring: RbdKeyring::File(PathBuf::from("/etc/ceph/a keyring")),
            ..conf
        };
        assert_eq!(CinderConf::parse(&file.render()).unwrap(), file);
    }
}
