//! Bookkeeping of the engine's [`State`]: the slot and state of a mahalla,
//! the set of active mahallas, and the hourly and daily housekeeping.

use posbon_model::EnrichedEvent;

use super::mahalla::Mahalla;
use super::{Ctx, Meta, State};
use crate::baseline::{day_of, hour_of};

impl State {
    pub(super) fn slot(&mut self, id: &str, event: &EnrichedEvent) -> u32 {
        if let Some(&s) = self.slots.get(id) {
            return s;
        }
        let known = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".to_owned());
        self.new_slot(Meta {
            id: id.to_owned(),
            district_id: known(&event.district_id),
            region_id: known(&event.region_id),
        })
    }

    pub(super) fn new_slot(&mut self, meta: Meta) -> u32 {
        let s = self.meta.len() as u32;
        self.slots.insert(&meta.id, s);
        self.meta.push(meta);
        self.mahallas.push(None);
        s
    }

    pub(super) fn mahalla(&mut self, ctx: &Ctx, slot: u32, now: i64) -> &mut Mahalla {
        let since = self.start.unwrap_or(now);
        self.mahallas[slot as usize].get_or_insert_with(|| Box::new(Mahalla::new(ctx, since, now)))
    }

    pub(super) fn update_active(&mut self, slot: u32) {
        let Some(m) = self.mahallas[slot as usize].as_deref_mut() else {
            self.active.remove(&slot);
            return;
        };
        let active = m.is_active();
        if active != m.listed {
            m.listed = active;
            if active {
                self.active.insert(slot);
            } else {
                self.active.remove(&slot);
            }
        }
    }

    /// Hourly: drops expired cell-rule data. Daily: prunes every mahalla.
    pub(super) fn housekeeping(&mut self, ctx: &Ctx, now: i64) {
        let hour = hour_of(now);
        if hour > self.prune_hour {
            self.prune_hour = hour;
            let oldest = day_of(ctx.local(now)) - ctx.window_days;
            for (map, rule) in self.cells.iter_mut().zip(&ctx.rules) {
                let cutoff = now - rule.window;
                map.retain(|_, c| {
                    c.prune(cutoff, oldest);
                    !c.is_empty()
                });
            }
        }
        let day = day_of(ctx.local(now));
        if day > self.housekeeping_day {
            self.housekeeping_day = day;
            for m in self.mahallas.iter_mut().flatten() {
                m.housekeeping(ctx, now);
            }
        }
    }
}
