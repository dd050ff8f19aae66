//! Users and groups by name or id, read from `/etc/passwd` and `/etc/group` as cron does for user
//! crontabs. Only those files are consulted: a name that exists only in LDAP or another NSS source
//! is not found. Pure reading and parsing; never changes any process.

use std::path::Path;

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// One line of `/etc/passwd`, the fields a run needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One line of `/etc/group`, the fields a run needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
}

pub fn user_by_name(name: &str) -> Option<User> {
    users(Path::new(PASSWD)).find(|u| u.name == name)
}

pub fn user_by_uid(uid: u32) -> Option<User> {
    users(Path::new(PASSWD)).find(|u| u.uid == uid)
}

pub fn group_by_name(name: &str) -> Option<Group> {
    groups(Path::new(GROUP)).find(|g| g.name == name)
}

fn users(path: &Path) -> impl Iterator<Item = User> {
    lines(path).filter_map(|line| parse_user(&line))
}

fn groups(path: &Path) -> impl Iterator<Item = Group> {
    lines(path).filter_map(|line| parse_group(&line))
}

/// The lines of a file, none if it cannot be read: an unreadable database knows no names.
fn lines(path: &Path) -> impl Iterator<Item = String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter()
}

/// `name:password:uid:gid:gecos:home:shell`; comments and malformed lines are skipped.
fn parse_user(line: &str) -> Option<User> {
    let fields: Vec<&str> = line.split(':').collect();
    if line.starts_with('#') || fields.len() < 7 || fields[0].is_empty() {
        return None;
    }
    Some(User {
        name: fields[0].to_owned(),
        uid: fields[2].parse().ok()?,
        gid: fields[3].parse().ok()?,
        home: fields[5].to_owned(),
    })
}

/// `name:password:gid:members`.
fn parse_group(line: &str) -> Option<Group> {
    let fields: Vec<&str> = line.split(':').collect();
    if line.starts_with('#') || fields.len() < 4 || fields[0].is_empty() {
        return None;
    }
    Some(Group {
        name: fields[0].to_owned(),
        gid: fields[2].parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_lines_parse_and_bad_ones_are_skipped() {
        assert_eq!(
            parse_user("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"),
            Some(User {
                name: "nobody".into(),
                uid: 65534,
                gid: 65534,
                home: "/nonexistent".into(),
            })
        );
        assert_eq!(parse_user("# a comment:x:1:1:c:/h:/s"), None);
        assert_eq!(parse_user("short:x:1"), None);
        assert_eq!(parse_user("bad:x:uid:1:c:/h:/s"), None);
        assert_eq!(
            parse_group("nogroup:x:65534:"),
            Some(Group {
                name: "nogroup".into(),
                gid: 65534
            })
        );
        assert_eq!(parse_group("g:x:notanumber:"), None);
    }
}
