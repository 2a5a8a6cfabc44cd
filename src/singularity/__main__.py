from singularity.cli import main

main()
