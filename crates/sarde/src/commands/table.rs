//! Text tables: columns padded to their widest cell, for `inspect`'s files and `list --vms`.

/// `titles` and `rows` as lines: each cell padded to its column's widest cell (titles count),
/// joined by `separator`, after `indent`; trailing blanks trimmed.
pub(super) fn aligned<const N: usize>(
    titles: [&str; N],
    rows: &[[String; N]],
    indent: &str,
    separator: &str,
) -> String {
    let titles = titles.map(str::to_owned);
    let widths: Vec<usize> = (0..N)
        .map(|i| {
            std::iter::once(&titles)
                .chain(rows)
                .map(|row| row[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&titles).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(indent);
        out.push_str(cells.join(separator).trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = [
            ["a".to_owned(), "long cell".to_owned()],
            ["longer".to_owned(), "x".to_owned()],
        ];
        assert_eq!(
            aligned(["N", "V"], &rows, "  ", "  "),
            "  N       V\n  a       long cell\n  longer  x\n"
        );
        assert_eq!(aligned(["N", "V"], &[], "", "\t"), "N\tV\n");
    }
}
