"""Host side of the serial link: frame codec (`protocol`), pyserial transport (`transport`), device client
(`client`) with timeouts, resynchronisation and bounded retries."""
