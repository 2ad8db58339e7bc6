import _hostdiag_boot

_hostdiag_boot.main()
