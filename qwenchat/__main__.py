from qwenchat.cli import main

main()
