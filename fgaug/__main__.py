from fgaug.cli import main

main()
