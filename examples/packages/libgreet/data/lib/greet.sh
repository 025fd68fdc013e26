# greet NAME: print a greeting for NAME.
greet() {
	printf 'Hello, %s!\n' "${1:-world}"
}
