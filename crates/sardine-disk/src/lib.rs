//! Disk packing: fixed-size zstd chunks, sparse files, qcow2 backing chains, the legacy gzip format.
