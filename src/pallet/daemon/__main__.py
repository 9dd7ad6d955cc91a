from pallet.daemon.main import main

main()
