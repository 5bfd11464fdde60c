//! Where a subtree's objects live (SPEC.md section 17).
//!
//! ```text
//! {prefix}/{engine}/{instance}/{replica}/
//!   manifest/{version:020}.json
//!   segments/{id}/{offset:020}-{length:020}
//!   superseded/{generation:020}/{id}.json
//! ```
//!
//! Part names carry the segment id and byte range, so an object's content is fixed by its name.

use wkp1_protocol::Subtree;
use wkp1_protocol::endpoint::SegmentId;

/// Key builder for one subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    base: String,
}

impl Layout {
    /// `prefix` comes from configuration, never from a request (`ADDR-1`); empty for none.
    pub fn new(prefix: &str, subtree: &Subtree) -> Self {
        let prefix = prefix.trim_matches('/');
        let base = if prefix.is_empty() {
            format!("{}/", subtree.path())
        } else {
            format!("{prefix}/{}/", subtree.path())
        };
        Self { base }
    }

    /// `{prefix}/{engine}/{instance}/{replica}/`
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn manifests(&self) -> String {
        format!("{}manifest/", self.base)
    }

    pub fn manifest(&self, version: u64) -> String {
        format!("{}manifest/{version:020}.json", self.base)
    }

    /// The manifest version a key names, if it is a manifest key of this subtree.
    pub fn manifest_version(&self, key: &str) -> Option<u64> {
        let name = key.strip_prefix(&self.manifests())?.strip_suffix(".json")?;
        (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit())).then(|| name.parse().ok())?
    }

    pub fn segments(&self) -> String {
        format!("{}segments/", self.base)
    }

    pub fn segment_parts(&self, id: &SegmentId) -> String {
        format!("{}segments/{id}/", self.base)
    }

    pub fn part(&self, id: &SegmentId, offset: u64, length: u64) -> String {
        format!("{}segments/{id}/{offset:020}-{length:020}", self.base)
    }

    /// Keys of the parts of a segment stored with these part lengths, with their offsets.
    pub fn parts(&self, id: &SegmentId, lengths: &[u64]) -> Vec<(u64, u64, String)> {
        let mut offset = 0;
        lengths
            .iter()
            .map(|&len| {
                let entry = (offset, len, self.part(id, offset, len));
                offset += len;
                entry
            })
            .collect()
    }

    pub fn superseded_all(&self) -> String {
        format!("{}superseded/", self.base)
    }

    pub fn superseded(&self, generation: u64, id: &SegmentId) -> String {
        format!("{}superseded/{generation:020}/{id}.json", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(prefix: &str) -> Layout {
        Layout::new(prefix, &Subtree::new("kv", "orders", "replica-0").unwrap())
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        let l = layout("weftkit");
        let id: SegmentId = "ab".repeat(32).parse().unwrap();
        assert_eq!(
            l.manifest(42),
            "weftkit/kv/orders/replica-0/manifest/00000000000000000042.json"
        );
        assert_eq!(
            l.part(&id, 0, 4118),
            format!(
                "weftkit/kv/orders/replica-0/segments/{id}/00000000000000000000-00000000000000004118"
            )
        );
        assert_eq!(
            l.superseded(3, &id),
            format!("weftkit/kv/orders/replica-0/superseded/00000000000000000003/{id}.json")
        );
        assert_eq!(layout("").base(), "kv/orders/replica-0/");
        assert_eq!(layout("/a/b/").base(), "a/b/kv/orders/replica-0/");
    }

    #[test]
    fn manifest_versions_parse_back_and_others_do_not() {
        let l = layout("p");
        assert_eq!(l.manifest_version(&l.manifest(7)), Some(7));
        assert_eq!(l.manifest_version("p/kv/orders/replica-0/manifest/7.json"), None);
        assert_eq!(
            l.manifest_version("p/kv/orders/replica-1/manifest/00000000000000000007.json"),
            None
        );
    }

    #[test]
    fn parts_tile_the_segment() {
        let id: SegmentId = "cd".repeat(32).parse().unwrap();
        let parts = layout("p").parts(&id, &[10, 10, 3]);
        let offsets: Vec<(u64, u64)> = parts.iter().map(|(o, l, _)| (*o, *l)).collect();
        assert_eq!(offsets, vec![(0, 10), (10, 10), (20, 3)]);
    }
}
