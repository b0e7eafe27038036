//! GOST v3 compatible proxy engine.
