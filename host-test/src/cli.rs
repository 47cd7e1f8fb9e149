//! The `warden` command.
