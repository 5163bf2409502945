//! A consumers document (`{"consumers": [...]}`) streamed consumer by consumer into a store
//! population: a million consumers are never held as parsed structures.

use std::fmt;

use super::consumers::validate_consumer;
use super::raw::RawConsumer;
use crate::consumers::ValidConsumer;
use crate::error::{serde_error, ConfigError, ErrorKind};
use crate::store::{Builder, Population};

/// Parse and validate a consumers document (`{"consumers": [...]}`, other top-level fields
/// ignored) as a remote source serves it, into a store population. The consumers are streamed:
/// each is validated and turned into records on its own, so that a million of them are never
/// held as parsed structures (only their compact records are).
pub fn parse_consumers_document(json: &[u8]) -> Result<Population, ConfigError> {
    consumers_population(serde_json::de::SliceRead::new(json))
}

/// [`parse_consumers_document`] from a reader: the document itself need not be in memory
/// (a loader reads a fetched document from the host in chunks).
pub fn read_consumers_document(reader: impl std::io::Read) -> Result<Population, ConfigError> {
    consumers_population(serde_json::de::IoRead::new(reader))
}

fn consumers_population<'de>(read: impl serde_json::de::Read<'de>) -> Result<Population, ConfigError> {
    let mut builder = Builder::new("consumers");
    for_each_consumer(read, |ci, c| builder.add(ci, &c))?;
    builder.finish()
}

/// Call `each` with every consumer of a consumers document, validated, in document order.
fn for_each_consumer<'de>(
    read: impl serde_json::de::Read<'de>,
    mut each: impl FnMut(usize, ValidConsumer) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    let mut refused = None;
    let mut de = serde_json::Deserializer::new(read);
    let mut track = serde_path_to_error::Track::new();
    let seed = DocumentSeed { each: &mut each, refused: &mut refused };
    let result =
        serde::de::DeserializeSeed::deserialize(seed, serde_path_to_error::Deserializer::new(&mut de, &mut track));
    if let Some(e) = refused {
        return Err(e);
    }
    result.map_err(|e| serde_error(track.path().to_string(), e))?;
    de.end().map_err(|e| ConfigError::new("", ErrorKind::Syntax(e.to_string())))
}

/// The top level of a consumers document: `consumers` is streamed, anything else skipped.
struct DocumentSeed<'a, F> {
    each: &'a mut F,
    refused: &'a mut Option<ConfigError>,
}

impl<'de, F: FnMut(usize, ValidConsumer) -> Result<(), ConfigError>> serde::de::DeserializeSeed<'de>
    for DocumentSeed<'_, F>
{
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: FnMut(usize, ValidConsumer) -> Result<(), ConfigError>> serde::de::Visitor<'de> for DocumentSeed<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != "consumers" {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            if seen {
                return Err(serde::de::Error::duplicate_field("consumers"));
            }
            seen = true;
            map.next_value_seed(ConsumersSeed { each: &mut *self.each, refused: &mut *self.refused })?;
        }
        Ok(())
    }
}

/// The `consumers` array, one consumer at a time.
struct ConsumersSeed<'a, F> {
    each: &'a mut F,
    refused: &'a mut Option<ConfigError>,
}

impl<'de, F: FnMut(usize, ValidConsumer) -> Result<(), ConfigError>> serde::de::DeserializeSeed<'de>
    for ConsumersSeed<'_, F>
{
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(usize, ValidConsumer) -> Result<(), ConfigError>> serde::de::Visitor<'de> for ConsumersSeed<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut ci = 0;
        while let Some(raw) = seq.next_element::<RawConsumer>()? {
            if let Err(e) = validate_consumer(raw, "consumers", ci).and_then(|c| (self.each)(ci, c)) {
                *self.refused = Some(e);
                return Err(serde::de::Error::custom("refused"));
            }
            ci += 1;
        }
        Ok(())
    }
}
