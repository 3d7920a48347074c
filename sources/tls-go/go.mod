module example.com/tls-go

go 1.22
