//! Members and their ids, computed as etcd 3.4 computes them (`etcdserver/api/membership`), so
//! that a Glass member started with an etcd member's flags gets that member's ids.
//!
//! - member id: the first 8 bytes (big-endian) of SHA-1 over the member's peer URLs, sorted
//!   and concatenated, followed by the cluster token (`--initial-cluster-token`);
//! - cluster id: the first 8 bytes of SHA-1 over the sorted member ids, each 8 bytes big-endian.

use sha1::{Digest, Sha1};

/// One member of the cluster as the API reports it (etcd's `membership.Member`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl Member {
    /// A member of the initial cluster: its id from its peer URLs and the cluster token.
    pub fn new(name: &str, mut peer_urls: Vec<String>, token: &str) -> Member {
        peer_urls.sort();
        let id = member_id(&peer_urls, token);
        Member {
            id,
            name: name.to_string(),
            peer_urls,
            client_urls: Vec::new(),
            is_learner: false,
        }
    }
}

/// A JSON string literal (quotes, backslashes and control characters escaped, as Go's
/// `encoding/json` writes them), for the small JSON documents Glass writes by hand.
pub fn json_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn prefix_u64(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

/// etcd's `NewMember` id for the initial cluster (no time component).
pub fn member_id(sorted_peer_urls: &[String], token: &str) -> u64 {
    let mut h = Sha1::new();
    for u in sorted_peer_urls {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
    prefix_u64(&h.finalize())
}

/// etcd's `RaftCluster.genID`.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    prefix_u64(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// etcd 3.4 with its defaults (`--name default`, peer URL `http://localhost:2380`, token
    /// `etcd-cluster`) is member 8e9e05c52164694d of cluster cdf818194e3a8c32 — the ids every
    /// fresh `etcd` prints.
    #[test]
    fn ids_are_etcds() {
        let m = Member::new(
            "default",
            vec!["http://localhost:2380".into()],
            "etcd-cluster",
        );
        assert_eq!(format!("{:x}", m.id), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[m.id])), "cdf818194e3a8c32");
    }
}
