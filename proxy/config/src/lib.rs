//! Raw GOST v3 configuration model.
