int ek_placeholder_unused(void) { return 0; }
