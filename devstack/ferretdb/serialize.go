package main

// FerretDB 1.24's SQLite backend runs an update as a read followed by a write, outside any
// transaction (by design: SQLite allows one writer per database). Concurrent updates of one
// document therefore lose writes: 200 concurrent {$inc: {n: 1}} leave n at about 14. MongoDB
// makes every single-document operation atomic, and the platform relies on it (outbox, applied
// event ids, counters). This proxy restores that guarantee locally: it forwards MongoDB wire
// protocol messages from every client connection to FerretDB, and runs the commands that write
// (insert, update, delete, findAndModify) one at a time. Reads pass freely, so a long-polling
// `hello` or a slow query never holds writers up.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
)

const (
	headerSize    = 16
	opMsg         = 2013
	moreToComeBit = 1 << 1
	maxMessage    = 48 * 1024 * 1024
)

type serializingProxy struct {
	backendNetwork string
	backendAddress string
	mu             sync.Mutex // one write at a time, across all connections
}

func (p *serializingProxy) serve(listener net.Listener) error {
	for {
		client, err := listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go p.handle(client)
	}
}

func (p *serializingProxy) handle(client net.Conn) {
	defer client.Close()
	backend, err := net.Dial(p.backendNetwork, p.backendAddress)
	if err != nil {
		log.Printf("proxy: cannot reach FerretDB: %v", err)
		return
	}
	defer backend.Close()
	for {
		request, err := readMessage(client)
		if err != nil {
			return // client closed the connection
		}
		if err := p.roundTrip(request, backend, client); err != nil {
			log.Printf("proxy: %v", err)
			return
		}
	}
}

func (p *serializingProxy) roundTrip(request []byte, backend, client net.Conn) error {
	if writeCommands[commandName(request)] {
		p.mu.Lock()
		defer p.mu.Unlock()
	}
	if _, err := backend.Write(request); err != nil {
		return fmt.Errorf("write to FerretDB: %w", err)
	}
	if hasMoreToCome(request) {
		return nil
	}
	for { // an exhaust cursor streams several replies to one request
		response, err := readMessage(backend)
		if err != nil {
			return fmt.Errorf("read from FerretDB: %w", err)
		}
		if _, err := client.Write(response); err != nil {
			return err
		}
		if !hasMoreToCome(response) {
			return nil
		}
	}
}

var writeCommands = map[string]bool{
	"insert": true, "update": true, "delete": true, "findAndModify": true, "findandmodify": true,
}

// commandName is the first key of an OP_MSG's body document (section kind 0), or "".
func commandName(message []byte) string {
	const bodyStart = headerSize + 4 // header, flag bits
	if binary.LittleEndian.Uint32(message[12:16]) != opMsg || len(message) < bodyStart+6 {
		return ""
	}
	if message[bodyStart] != 0 { // section kind 0: the command document
		return ""
	}
	// The document: int32 length, then the first element: type byte, key as a C string.
	keyStart := bodyStart + 1 + 4 + 1
	for end := keyStart; end < len(message); end++ {
		if message[end] == 0 {
			return string(message[keyStart:end])
		}
	}
	return ""
}

func readMessage(conn net.Conn) ([]byte, error) {
	header := make([]byte, headerSize)
	if _, err := io.ReadFull(conn, header); err != nil {
		return nil, err
	}
	length := int(binary.LittleEndian.Uint32(header[0:4]))
	if length < headerSize || length > maxMessage {
		return nil, fmt.Errorf("bad message length %d", length)
	}
	message := make([]byte, length)
	copy(message, header)
	if _, err := io.ReadFull(conn, message[headerSize:]); err != nil {
		return nil, err
	}
	return message, nil
}

// hasMoreToCome: an OP_MSG request with this flag gets no answer; a reply with it is followed by
// another reply.
func hasMoreToCome(message []byte) bool {
	opCode := binary.LittleEndian.Uint32(message[12:16])
	if opCode != opMsg || len(message) < headerSize+4 {
		return false
	}
	flags := binary.LittleEndian.Uint32(message[16:20])
	return flags&moreToComeBit != 0
}
