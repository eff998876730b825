//! Shards: which mahallas an escalator shard owns, and its durable consumer.

/// One shard of the mahallas: index `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Index, `0..count`.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// Shard `index` of `count`.
    pub fn new(index: u32, count: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(count >= 1, "escalator.shard_count: must be at least 1");
        anyhow::ensure!(
            index < count,
            "escalator.shard_index: {index} is not below shard_count {count}"
        );
        Ok(Self { index, count })
    }

    /// `<index>-of-<count>`.
    pub fn name(&self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }

    /// The durable consumer name of this shard.
    pub(crate) fn durable(&self) -> String {
        posbon_bus::subjects::escalator_durable(self.index, self.count)
    }

    /// Whether this shard owns `mahalla_id` (`None`: an unassigned event,
    /// owned by shard 0).
    pub fn owns(&self, mahalla_id: Option<&str>) -> bool {
        match mahalla_id {
            None => self.index == 0,
            Some(id) => {
                posbon_store::stable_hash(id.as_bytes()) % u64::from(self.count)
                    == u64::from(self.index)
            }
        }
    }
}

/// `name`'s place among `n` (0 when `n` is 0), by the same stable hash.
pub(crate) fn stable_index(name: &str, n: usize) -> u64 {
    posbon_store::stable_hash(name.as_bytes()) % u64::try_from(n.max(1)).unwrap_or(1)
}
