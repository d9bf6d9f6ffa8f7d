from nanodet_mcu.cli import main

raise SystemExit(main())
