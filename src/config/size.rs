//! Sizes as systemd reads them (`MemoryMax=256M`): `K`, `M`, `G`, `T` are
//! powers of 1024, as are `KiB` … `TiB`; `KB` … `TB` are powers of 1000, as
//! written. Operators port limits from systemd units and Docker Compose files
//! (`memory: 256M`, also base 1024), so `256M` must mean 256 MiB here too.
//!
//! Suffixes are case-insensitive (`256m`, as Compose allows); a fraction is
//! allowed (`1.5G`) and rounds down to whole bytes, as systemd does.

/// Parses a size in bytes. The error says what was wrong, for a message that
/// also names the config key.
pub fn parse(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = (&s[..split], s[split..].trim());
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} (K, M, G, T are base 1024, as in systemd; KiB, MiB, GiB, TiB too; KB, MB, GB, TB are base 1000)"
            ))
        }
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err("no number".into());
    }
    let too_large = || "too large".to_string();
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut bytes = whole.checked_mul(multiplier).ok_or_else(too_large)?;
    // The fraction in exact integer arithmetic: digits * multiplier / 10^n.
    let frac = &frac[..frac.len().min(12)];
    if !frac.is_empty() {
        let digits: u128 = frac.parse().map_err(|_| "no number".to_string())?;
        let scale = 10u128.pow(frac.len() as u32);
        let part = digits * u128::from(multiplier) / scale;
        bytes = bytes
            .checked_add(u64::try_from(part).map_err(|_| too_large())?)
            .ok_or_else(too_large)?;
    }
    Ok(bytes)
}

/// A byte count for people: `268435456 bytes (256 MiB)`.
pub fn show(bytes: u64) -> String {
    let units = [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, name) in units {
        if bytes >= size {
            let v = bytes as f64 / size as f64;
            let v = if bytes % size == 0 {
                format!("{}", bytes / size)
            } else {
                format!("{v:.2}")
            };
            return format!("{bytes} bytes ({v} {name})");
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_suffixes_are_base_1024() {
        assert_eq!(parse("64M"), Ok(64 * 1024 * 1024));
        assert_eq!(parse("256M"), Ok(268_435_456));
        assert_eq!(parse("1G"), Ok(1 << 30));
        assert_eq!(parse("2T"), Ok(2 << 40));
        assert_eq!(parse("512K"), Ok(512 * 1024));
        assert_eq!(parse("256m"), Ok(268_435_456));
        assert_eq!(parse(" 1.5G "), Ok(1_610_612_736));
        assert_eq!(parse("0.5M"), Ok(524_288));
    }

    #[test]
    fn iec_and_si_suffixes_as_written() {
        assert_eq!(parse("256MiB"), Ok(268_435_456));
        assert_eq!(parse("1GiB"), Ok(1 << 30));
        assert_eq!(parse("4KiB"), Ok(4096));
        assert_eq!(parse("256MB"), Ok(256_000_000));
        assert_eq!(parse("1GB"), Ok(1_000_000_000));
        assert_eq!(parse("1 kB"), Ok(1000));
        assert_eq!(parse("1TB"), Ok(1_000_000_000_000));
        assert_eq!(parse("1048576"), Ok(1_048_576));
        assert_eq!(parse("100B"), Ok(100));
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(parse("256Q").unwrap_err().contains("unknown unit \"Q\""));
        assert!(parse("").is_err());
        assert!(parse("M").is_err());
        assert!(parse("1.2.3M").is_err());
        assert!(parse("-1M").is_err());
        assert_eq!(parse("99999999999T").unwrap_err(), "too large");
    }

    #[test]
    fn shown_in_bytes_and_binary_units() {
        assert_eq!(show(268_435_456), "268435456 bytes (256 MiB)");
        assert_eq!(show(1_000_000_000), "1000000000 bytes (953.67 MiB)");
        assert_eq!(show(100), "100 bytes");
    }
}
