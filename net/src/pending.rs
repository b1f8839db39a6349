//! A connection's unconsumed input: bytes `on_data` left behind, and bytes that
//! arrived while reading was stopped.
//!
//! Most connections never leave input behind, so the buffer lives behind a pointer:
//! an idle connection pays 8 B in its slot (a plain `Vec` is 24 B), and the buffer,
//! with whatever capacity a burst grew it to, is freed as soon as it is emptied.

/// Unconsumed input, `None` (no allocation) while empty.
// The box is the point: 8 B in every connection slot instead of a 24 B `Vec`.
#[allow(clippy::box_collection)]
#[derive(Default)]
pub(crate) struct Pending(Option<Box<Vec<u8>>>);

impl Pending {
    /// No bytes are held.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Bytes held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |v| v.len())
    }

    /// Appends `data` (allocating on the first bytes).
    pub(crate) fn extend_from_slice(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.0
            .get_or_insert_with(Default::default)
            .extend_from_slice(data);
    }

    /// Takes the bytes out (to hand them to `on_data`); the connection holds none
    /// until [`put_back`](Self::put_back).
    pub(crate) fn take(&mut self) -> Vec<u8> {
        self.0.take().map(|b| *b).unwrap_or_default()
    }

    /// Puts back what is left of a [`take`](Self::take)n buffer after `used` of its
    /// bytes were consumed, appending anything that arrived meanwhile. An emptied
    /// buffer is freed; one that a burst left mostly unused gives memory back.
    pub(crate) fn put_back(&mut self, mut bytes: Vec<u8>, used: usize) {
        bytes.drain(..used.min(bytes.len()));
        if let Some(newer) = self.0.take() {
            bytes.extend_from_slice(&newer);
        }
        if bytes.is_empty() {
            return;
        }
        if bytes.capacity() > 16 * 1024 && bytes.capacity() / 4 > bytes.len() {
            bytes.shrink_to(bytes.len() * 2);
        }
        self.0 = Some(Box::new(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::Pending;

    #[test]
    fn idle_costs_a_pointer_and_emptied_frees() {
        assert_eq!(std::mem::size_of::<Pending>(), 8);
        let mut p = Pending::default();
        assert!(p.is_empty());
        p.extend_from_slice(&[]);
        assert!(p.is_empty(), "no allocation for nothing");
        p.extend_from_slice(&[7u8; 100_000]);
        assert_eq!(p.len(), 100_000);
        let v = p.take();
        assert!(p.is_empty());
        p.put_back(v, 99_990);
        assert_eq!(p.len(), 10);
        let v = p.take();
        assert!(
            v.capacity() < 100_000,
            "a mostly unused burst buffer shrinks"
        );
        p.put_back(v, 10);
        assert!(p.is_empty() && p.0.is_none(), "an emptied buffer is freed");
    }

    #[test]
    fn bytes_arriving_while_taken_follow_the_leftovers() {
        let mut p = Pending::default();
        p.extend_from_slice(b"abcd");
        let v = p.take();
        p.extend_from_slice(b"ef");
        p.put_back(v, 2);
        assert_eq!(p.take(), b"cdef");
    }
}
