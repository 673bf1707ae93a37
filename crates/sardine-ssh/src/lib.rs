//! SSH to guests (russh): run commands and scripts, stream output, password or key auth.
