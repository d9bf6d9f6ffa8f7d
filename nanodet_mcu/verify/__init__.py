"""Stage 5, the verifier: drives a device over the link (`nanodet_mcu.link`) and checks everything it reports against
the host reference (`verifier`); renders what it found as a table, JSON and JUnit (`report`)."""
