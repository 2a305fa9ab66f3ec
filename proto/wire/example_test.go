package wire_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net"

	"bankwire/proto/wire"
)

// The socket walkthrough's steps with real frames: the server listens,
// accepts and greets with HELLO; the client receives it and sends a PING;
// the server receives that and answers PONG; the client closes, and the
// server reads the end of the stream. proto.Server and proto.Client do the
// same with more care (limits, deadlines, many requests at once).
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // socket + bind + listen
	check(err)
	defer ln.Close()

	done := make(chan struct{})
	go func() { // the server
		defer close(done)
		conn, err := ln.Accept() // accept
		check(err)
		defer conn.Close()
		fr := wire.NewFramer(conn, conn)
		hello, _ := json.Marshal(wire.Hello{Versions: []int{1}, Server: "example/1.0", MaxPayload: 4096, MaxInFlight: 1,
			IdleTimeoutMs: 60000, HandshakeTimeoutMs: 5000})
		check(fr.WriteFrame(wire.Frame{Type: wire.FrameHello, Payload: hello})) // send the greeting
		f, err := fr.ReadFrame()                                                // recv
		check(err)
		fmt.Println("server recv:", f, string(f.Payload))
		check(fr.WriteFrame(wire.Frame{Type: wire.FramePong, ID: f.ID, Payload: f.Payload})) // send
		_, err = fr.ReadFrame()
		fmt.Println("server recv:", err) // the client closed
	}()

	conn, err := net.Dial("tcp", ln.Addr().String()) // connect
	check(err)
	fr := wire.NewFramer(conn, conn)
	f, err := fr.ReadFrame() // recv the greeting
	check(err)
	fmt.Println("client recv:", f, string(f.Payload))
	ping := wire.Frame{Type: wire.FramePing, ID: 1, Payload: []byte("hi")}
	fmt.Printf("client send: % x\n", wire.AppendFrame(nil, ping)) // header (12 bytes), then payload
	check(fr.WriteFrame(ping))
	f, err = fr.ReadFrame()
	check(err)
	fmt.Println("client recv:", f, string(f.Payload))
	check(conn.Close()) // close
	<-done
	// Output:
	// client recv: HELLO id=0 len=128 {"versions":[1],"server":"example/1.0","max_payload":4096,"max_in_flight":1,"idle_timeout_ms":60000,"handshake_timeout_ms":5000}
	// client send: 01 09 00 00 00 00 00 01 00 00 00 02 68 69
	// server recv: PING id=1 len=2 hi
	// client recv: PONG id=1 len=2 hi
	// server recv: EOF
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
