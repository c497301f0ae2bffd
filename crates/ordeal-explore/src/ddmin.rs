//! Delta debugging (Zeller and Hildebrandt's ddmin): a 1-minimal subset that still fails.

/// The smallest subset of `items` (in their order) found by ddmin for which `fails` holds,
/// assuming `fails(items)`. 1-minimal: removing any single item makes `fails` false. `fails`
/// is called at most once per distinct subset (results are cached), never on `items` itself
/// nor on the empty set.
pub fn ddmin<T: Clone>(items: &[T], mut fails: impl FnMut(&[T]) -> bool) -> Vec<T> {
    let mut cache: std::collections::HashMap<Vec<usize>, bool> = Default::default();
    let mut test = |idx: &[usize]| -> bool {
        if let Some(&r) = cache.get(idx) {
            return r;
        }
        let subset: Vec<T> = idx.iter().map(|&i| items[i].clone()).collect();
        let r = fails(&subset);
        cache.insert(idx.to_vec(), r);
        r
    };
    let mut cur: Vec<usize> = (0..items.len()).collect();
    let mut n = 2usize;
    while cur.len() >= 2 {
        let chunks = split(&cur, n);
        let mut reduced = false;
        // Reduce to a subset.
        for c in &chunks {
            if test(c) {
                cur = c.clone();
                n = 2;
                reduced = true;
                break;
            }
        }
        if !reduced && n > 2 {
            // Reduce to a complement.
            for i in 0..chunks.len() {
                let comp: Vec<usize> = chunks
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, c)| c.iter().copied())
                    .collect();
                if test(&comp) {
                    cur = comp;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= cur.len() {
                break;
            }
            n = (2 * n).min(cur.len());
        }
    }
    cur.into_iter().map(|i| items[i].clone()).collect()
}

/// `v` in `n` contiguous chunks of nearly equal size (none empty).
fn split(v: &[usize], n: usize) -> Vec<Vec<usize>> {
    let n = n.min(v.len()).max(1);
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let end = start + (v.len() - start) / (n - i);
        out.push(v[start..end].to_vec());
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_exact_minimal_pair() {
        let items: Vec<u32> = (0..16).collect();
        let mut calls = 0;
        let min = ddmin(&items, |s| {
            calls += 1;
            s.contains(&3) && s.contains(&11)
        });
        assert_eq!(min, vec![3, 11]);
        assert!(calls <= 40, "{calls} tests");
    }

    #[test]
    fn finds_a_single_culprit_and_a_triple() {
        let items: Vec<u32> = (0..9).collect();
        assert_eq!(ddmin(&items, |s| s.contains(&7)), vec![7]);
        let min = ddmin(&items, |s| [0, 4, 8].iter().all(|x| s.contains(x)));
        assert_eq!(min, vec![0, 4, 8]);
    }

    #[test]
    fn keeps_everything_when_everything_is_needed() {
        let items = vec!['a', 'b', 'c'];
        assert_eq!(ddmin(&items, |s| s.len() == 3), items);
        assert_eq!(ddmin(&['x'], |_| true), vec!['x']);
    }

    #[test]
    fn chunks_cover_the_input() {
        assert_eq!(split(&[1, 2, 3, 4, 5], 2), vec![vec![1, 2], vec![3, 4, 5]]);
        assert_eq!(split(&[1, 2], 4), vec![vec![1], vec![2]]);
    }
}
