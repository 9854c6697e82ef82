//! `qledger screening check` (SPEC §3.11): which approved customers are
//! hits or potential matches in the snapshot in force on the as-of date.

use crate::error::Result;
use crate::period::format_date;
use crate::records::customers::{self, CustomerStatus};
use crate::records::screening::{self, normalise};
use chrono::NaiveDate;
use rusqlite::Connection;
use std::collections::{BTreeMap, HashMap};

/// One customer matching one listed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The customer.
    pub customer_id: String,
    /// Its name on the as-of date.
    pub name: String,
    /// The list.
    pub list: String,
    /// The entry's id.
    pub entry_id: String,
    /// The name or alt name that matched, as written.
    pub listed_name: String,
    /// Hits only: whether a clearance is recorded.
    pub cleared: bool,
}

/// The answer of `screening check`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScreeningCheck {
    /// The as-of date.
    pub as_of: Option<NaiveDate>,
    /// Hits (refused unless cleared).
    pub hits: Vec<Match>,
    /// Potential matches (listed for review, never refused).
    pub potential: Vec<Match>,
}

impl ScreeningCheck {
    /// Whether a hit without a clearance exists (exit 1 for cron).
    pub fn has_uncleared_hit(&self) -> bool {
        self.hits.iter().any(|hit| !hit.cleared)
    }

    /// The SPEC §5 JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let item = |m: &Match, with_cleared: bool| {
            let mut object = serde_json::json!({
                "customer_id": m.customer_id,
                "name": m.name,
                "list": m.list,
                "entry_id": m.entry_id,
                "listed_name": m.listed_name,
            });
            if with_cleared {
                object["cleared"] = serde_json::json!(m.cleared);
            }
            object
        };
        serde_json::json!({
            "as_of": self.as_of.map(format_date),
            "hits": self.hits.iter().map(|m| item(m, true)).collect::<Vec<_>>(),
            "potential": self.potential.iter().map(|m| item(m, false)).collect::<Vec<_>>(),
        })
    }
}

/// One distinct N(name) of a snapshot: the key, its number of distinct
/// words, and the (entry seq, listed name)s that give it.
type KeyEntries = (String, usize, Vec<(i64, String)>);

/// A snapshot's names indexed for matching: N(name) -> (entry, listed
/// name), and word -> the distinct N(name)s holding it.
struct NameIndex {
    /// Distinct keys with their entries: (key, words, [(entry seq, listed name)]).
    keys: Vec<KeyEntries>,
    by_key: HashMap<String, usize>,
    by_word: HashMap<String, Vec<usize>>,
    entries: HashMap<i64, (String, String)>,
}

impl NameIndex {
    /// The entries (seq → listed name) whose key's words contain, or are
    /// contained in, the words of `key`, both of at least two words
    /// (SPEC §3.11 potential match). `counts` is scratch, one per key,
    /// all zero before and after.
    fn potential_entries(&self, key: &str, counts: &mut [u32]) -> BTreeMap<i64, String> {
        let mut found: BTreeMap<i64, String> = BTreeMap::new();
        let mut words: Vec<&str> = key.split(' ').collect();
        words.sort_unstable();
        words.dedup();
        if words.len() < 2 {
            return found;
        }
        // How many of the words each listed key shares.
        let mut touched = Vec::new();
        for word in &words {
            for &at in self.by_word.get(*word).map_or(&[][..], Vec::as_slice) {
                if counts[at] == 0 {
                    touched.push(at);
                }
                counts[at] += 1;
            }
        }
        for &at in &touched {
            let (_, listed_words, entries) = &self.keys[at];
            let shared = counts[at] as usize;
            counts[at] = 0;
            let contains = shared == words.len() || shared == *listed_words;
            if *listed_words >= 2 && contains {
                for (seq, listed) in entries {
                    found.entry(*seq).or_insert_with(|| listed.clone());
                }
            }
        }
        found
    }

    fn load(conn: &Connection, snapshot: NaiveDate) -> Result<NameIndex> {
        let mut index = NameIndex {
            keys: Vec::new(),
            by_key: HashMap::new(),
            by_word: HashMap::new(),
            entries: HashMap::new(),
        };
        for (seq, party) in screening::snapshot_rows(conn, snapshot)? {
            index.entries.insert(seq, (party.list, party.entry_id));
        }
        let mut statement = conn.prepare(
            "SELECT name_key, entry_seq, listed_name FROM derived_screening_names \
             WHERE effective_from = ?1 ORDER BY entry_seq, listed_name",
        )?;
        let mut rows = statement.query([format_date(snapshot)])?;
        while let Some(row) = rows.next()? {
            let key: String = row.get(0)?;
            let found = (row.get::<_, i64>(1)?, row.get::<_, String>(2)?);
            if let Some(&at) = index.by_key.get(&key) {
                index.keys[at].2.push(found);
                continue;
            }
            let at = index.keys.len();
            let mut words: Vec<&str> = key.split(' ').collect();
            words.sort_unstable();
            words.dedup();
            for word in &words {
                index.by_word.entry(word.to_string()).or_default().push(at);
            }
            index.keys.push((key.clone(), words.len(), vec![found]));
            index.by_key.insert(key, at);
        }
        Ok(index)
    }
}

/// `screening check` on `as_of`: every customer approved on it that is a
/// hit (with `cleared`) or else a potential match: word sets of N(name)
/// and of a listed name, each of at least two words, one containing the
/// other. In customer order, then entry order.
pub fn screening_check(conn: &Connection, as_of: NaiveDate) -> Result<ScreeningCheck> {
    let mut answer = ScreeningCheck {
        as_of: Some(as_of),
        ..ScreeningCheck::default()
    };
    let Some(snapshot) = screening::snapshot_on(conn, as_of)? else {
        return Ok(answer);
    };
    let index = NameIndex::load(conn, snapshot)?;
    let mut counts: Vec<u32> = vec![0; index.keys.len()];
    for (customer_id, name) in approved_on(conn, as_of)? {
        let key = normalise(&name);
        if key.is_empty() {
            continue;
        }
        if let Some(&at) = index.by_key.get(&key) {
            for (seq, listed) in distinct_entries(&index.keys[at].2) {
                let (list, entry_id) = index.entries[&seq].clone();
                let cleared = screening::is_cleared(conn, &customer_id, &list, &entry_id)?;
                answer.hits.push(Match {
                    customer_id: customer_id.clone(),
                    name: name.clone(),
                    list,
                    entry_id,
                    listed_name: listed,
                    cleared,
                });
            }
            continue;
        }
        let found = index.potential_entries(&key, &mut counts);
        for (seq, listed_name) in found {
            let (list, entry_id) = index.entries[&seq].clone();
            answer.potential.push(Match {
                customer_id: customer_id.clone(),
                name: name.clone(),
                list,
                entry_id,
                listed_name,
                cleared: false,
            });
        }
    }
    Ok(answer)
}

/// One (entry, listed name) per entry, in entry order.
fn distinct_entries(entries: &[(i64, String)]) -> Vec<(i64, String)> {
    let mut found: BTreeMap<i64, String> = BTreeMap::new();
    for (seq, listed) in entries {
        found.entry(*seq).or_insert_with(|| listed.clone());
    }
    found.into_iter().collect()
}

/// Every customer approved on `date` (KYC not lapsed), with its name then,
/// in customer id order: every event read in one query.
fn approved_on(conn: &Connection, date: NaiveDate) -> Result<Vec<(String, String)>> {
    let mut events: BTreeMap<String, Vec<customers::CustomerEvent>> = BTreeMap::new();
    for (_, event) in customers::all_with_seq(conn)? {
        events
            .entry(event.customer_id.clone())
            .or_default()
            .push(event);
    }
    let mut approved = Vec::new();
    for (id, mut history) in events {
        history.sort_by_key(|event| event.effective_date);
        if let Some(event) = customers::latest_on(&history, date) {
            if event.status == CustomerStatus::Approved && !crate::rules::kyc_lapsed_on(event, date)
            {
                approved.push((id, event.name.clone()));
            }
        }
    }
    Ok(approved)
}
