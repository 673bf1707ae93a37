//! OCI: image references, the local image-layout store, a streaming registry client, registry credentials.
