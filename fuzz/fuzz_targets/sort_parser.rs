//! The List `sorts` parser: any list of strings. Never panics; what it
//! accepts is at most one criterion per field and prints back to its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokend::domain::list::Sorts;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<String> = text.split('&').map(str::to_owned).collect();
    if let Ok(sorts) = Sorts::parse(&values) {
        let specs = sorts.specs();
        assert_eq!(specs.len(), values.len());
        for (spec, value) in specs.iter().zip(&values) {
            let direction = match spec.direction {
                tokend::domain::list::Direction::Asc => "asc",
                tokend::domain::list::Direction::Desc => "desc",
            };
            assert_eq!(format!("{}:{direction}", spec.field.as_str()), *value);
        }
        for (i, a) in specs.iter().enumerate() {
            assert!(specs[i + 1..].iter().all(|b| b.field != a.field));
        }
    }
});
