package main

// FerretDB 1.24 runs an update as a read followed by a write, outside any transaction (on SQLite
// and on PostgreSQL alike). Concurrent updates of one document therefore lose writes: 200
// concurrent {$inc: {n: 1}} leave n at about 14. MongoDB makes every single-document operation
// atomic, and the platform relies on it (outbox, applied event ids, counters). This proxy restores
// that guarantee locally: it forwards MongoDB wire protocol messages from every client connection
// to FerretDB, and runs the commands that write (insert, update, delete, findAndModify) to one
// collection one at a time. Writes to different collections run side by side, and reads pass
// freely, so a long-polling `hello` or a slow query never holds writers up.

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
	mu             sync.Mutex             // guards locks
	locks          map[string]*sync.Mutex // one per "database.collection": one write at a time
}

func newSerializingProxy(network, address string) *serializingProxy {
	return &serializingProxy{backendNetwork: network, backendAddress: address, locks: map[string]*sync.Mutex{}}
}

// lockFor is the write lock of a namespace; the set of namespaces is small (one per collection).
func (p *serializingProxy) lockFor(namespace string) *sync.Mutex {
	p.mu.Lock()
	defer p.mu.Unlock()
	lock, ok := p.locks[namespace]
	if !ok {
		lock = &sync.Mutex{}
		p.locks[namespace] = lock
	}
	return lock
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
	name, namespace := commandNamespace(request)
	if !writeCommands[name] {
		return p.forward(request, backend, client)
	}
	lock := p.lockFor(namespace)
	lock.Lock()
	defer lock.Unlock()
	if hasMoreToCome(request) {
		// An unacknowledged write (w:0): ask FerretDB for the answer the client does not want,
		// and keep the lock until it arrives, i.e. until the write has been applied.
		if _, err := backend.Write(acknowledged(request)); err != nil {
			return fmt.Errorf("write to FerretDB: %w", err)
		}
		_, err := readMessage(backend)
		return err
	}
	return p.forward(request, backend, client)
}

func (p *serializingProxy) forward(request []byte, backend, client net.Conn) error {
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

// commandNamespace reads an OP_MSG's body document (section kind 0): the command's name is its
// first key, the collection that key's string value, the database the `$db` element. Anything
// else (another opcode, a malformed body) gives "" for both.
func commandNamespace(message []byte) (name, namespace string) {
	const bodyStart = headerSize + 4 + 1 // header, flag bits, section kind
	if binary.LittleEndian.Uint32(message[12:16]) != opMsg || len(message) < bodyStart+5 {
		return "", ""
	}
	if message[bodyStart-1] != 0 { // section kind 0: the command document
		return "", ""
	}
	docLength := int(binary.LittleEndian.Uint32(message[bodyStart : bodyStart+4]))
	if docLength < 5 || bodyStart+docLength > len(message) {
		return "", ""
	}
	var collection, database string
	walkElements(message[bodyStart+4:bodyStart+docLength-1], func(index int, kind byte, key string, value []byte) {
		if index == 0 {
			name = key
			if kind == 0x02 {
				collection = bsonString(value)
			}
		} else if key == "$db" && kind == 0x02 {
			database = bsonString(value)
		}
	})
	return name, database + "." + collection
}

// walkElements calls visit for each element of a BSON document's element list; it stops at the
// first element it cannot size.
func walkElements(elements []byte, visit func(index int, kind byte, key string, value []byte)) {
	for index, at := 0, 0; at < len(elements); index++ {
		kind := elements[at]
		keyEnd := at + 1
		for keyEnd < len(elements) && elements[keyEnd] != 0 {
			keyEnd++
		}
		if keyEnd >= len(elements) {
			return
		}
		valueStart := keyEnd + 1
		size := bsonValueSize(kind, elements[valueStart:])
		if size < 0 || valueStart+size > len(elements) {
			return
		}
		visit(index, kind, string(elements[at+1:keyEnd]), elements[valueStart:valueStart+size])
		at = valueStart + size
	}
}

// bsonValueSize is the length in bytes of a value of BSON type kind at the start of data, or -1.
func bsonValueSize(kind byte, data []byte) int {
	int32At := func(offset int) int {
		if len(data) < offset+4 {
			return -1
		}
		return int(int32(binary.LittleEndian.Uint32(data[offset : offset+4])))
	}
	cstringEnd := func(from int) int {
		for i := from; i < len(data); i++ {
			if data[i] == 0 {
				return i + 1
			}
		}
		return -1
	}
	switch kind {
	case 0x01, 0x09, 0x11, 0x12: // double, datetime, timestamp, int64
		return 8
	case 0x02, 0x0D, 0x0E: // string, JavaScript, symbol
		if n := int32At(0); n >= 0 {
			return 4 + n
		}
		return -1
	case 0x03, 0x04, 0x0F: // document, array, code with scope: the length includes itself
		return int32At(0)
	case 0x05: // binary: length, subtype, bytes
		if n := int32At(0); n >= 0 {
			return 5 + n
		}
		return -1
	case 0x06, 0x0A, 0x7F, 0xFF: // undefined, null, max key, min key
		return 0
	case 0x07: // ObjectId
		return 12
	case 0x08: // boolean
		return 1
	case 0x0B: // regular expression: two C strings
		if first := cstringEnd(0); first > 0 {
			return cstringEnd(first)
		}
		return -1
	case 0x0C: // DBPointer: string, ObjectId
		if n := int32At(0); n >= 0 {
			return 4 + n + 12
		}
		return -1
	case 0x10: // int32
		return 4
	case 0x13: // decimal128
		return 16
	}
	return -1
}

func bsonString(value []byte) string {
	if len(value) < 5 {
		return ""
	}
	return string(value[4 : len(value)-1]) // int32 length, bytes, NUL
}

// acknowledged is a copy of an OP_MSG without the moreToCome flag (and without its checksum,
// which the changed flags would invalidate), so that FerretDB answers it.
func acknowledged(message []byte) []byte {
	const checksumPresent = 1 << 0
	flags := binary.LittleEndian.Uint32(message[16:20])
	length := len(message)
	if flags&checksumPresent != 0 {
		length -= 4
	}
	copyOf := make([]byte, length)
	copy(copyOf, message[:length])
	binary.LittleEndian.PutUint32(copyOf[0:4], uint32(length))
	binary.LittleEndian.PutUint32(copyOf[16:20], flags&^(moreToComeBit|checksumPresent))
	return copyOf
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
