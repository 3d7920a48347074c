// Command hello-go prints a greeting: the smallest service osless ships.
package main

import "fmt"

func main() {
	fmt.Println("Hello from OS-less container (Go edition)")
}
