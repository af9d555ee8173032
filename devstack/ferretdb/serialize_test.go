package main

import (
	"encoding/binary"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// element builds one BSON element of type string, int32 or embedded document.
func element(kind byte, key string, value []byte) []byte {
	out := append([]byte{kind}, key...)
	return append(append(out, 0), value...)
}

func bsonStr(s string) []byte {
	out := binary.LittleEndian.AppendUint32(nil, uint32(len(s)+1))
	return append(append(out, s...), 0)
}

func document(elements ...[]byte) []byte {
	var body []byte
	for _, e := range elements {
		body = append(body, e...)
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(len(body)+5))
	return append(append(out, body...), 0)
}

func message(flags uint32, body []byte) []byte {
	out := make([]byte, headerSize)
	binary.LittleEndian.PutUint32(out[12:16], opMsg)
	out = binary.LittleEndian.AppendUint32(out, flags)
	out = append(append(out, 0), body...)
	binary.LittleEndian.PutUint32(out[0:4], uint32(len(out)))
	return out
}

func TestCommandNamespaceSkipsEveryKindOfElementBeforeDb(t *testing.T) {
	body := document(
		element(0x02, "update", bsonStr("cases")),
		element(0x08, "ordered", []byte{1}),
		element(0x03, "lsid", document(element(0x05, "id", append(binary.LittleEndian.AppendUint32(nil, 16), make([]byte, 17)...)))),
		element(0x10, "maxTimeMS", []byte{1, 0, 0, 0}),
		element(0x0B, "re", []byte("a\x00i\x00")),
		element(0x02, "$db", bsonStr("dvc_processing")),
	)
	name, namespace := commandNamespace(message(0, body))
	if name != "update" || namespace != "dvc_processing.cases" {
		t.Fatalf("got %q %q", name, namespace)
	}
}

func TestReadsAndOtherOpcodesAreNotWrites(t *testing.T) {
	name, _ := commandNamespace(message(0, document(element(0x02, "find", bsonStr("cases")))))
	if writeCommands[name] {
		t.Fatal("find is not a write")
	}
	legacy := make([]byte, 40)
	binary.LittleEndian.PutUint32(legacy[12:16], 2004) // OP_QUERY
	if name, namespace := commandNamespace(legacy); name != "" || namespace != "" {
		t.Fatalf("got %q %q", name, namespace)
	}
}

func TestAcknowledgedClearsMoreToComeAndDropsTheChecksum(t *testing.T) {
	request := message(moreToComeBit|1, document(element(0x02, "insert", bsonStr("x"))))
	request = append(request, 1, 2, 3, 4) // checksum
	binary.LittleEndian.PutUint32(request[0:4], uint32(len(request)))
	ack := acknowledged(request)
	if hasMoreToCome(ack) || binary.LittleEndian.Uint32(ack[16:20]) != 0 {
		t.Fatal("flags not cleared")
	}
	if int(binary.LittleEndian.Uint32(ack[0:4])) != len(request)-4 || len(ack) != len(request)-4 {
		t.Fatal("checksum not dropped")
	}
}

// fakeFerretDB answers every request on its connections, holding answers for the namespaces in
// hold until release is closed.
func fakeFerretDB(t *testing.T, listener net.Listener, hold string, release <-chan struct{}) {
	for {
		conn, err := listener.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			for {
				request, err := readMessage(conn)
				if err != nil {
					return
				}
				if _, namespace := commandNamespace(request); namespace == hold {
					<-release
				}
				if !hasMoreToCome(request) {
					if _, err := conn.Write(message(0, document(element(0x10, "ok", []byte{1, 0, 0, 0})))); err != nil {
						return
					}
				}
			}
		}()
	}
}

func writeTo(collection string) []byte {
	return message(0, document(
		element(0x02, "update", bsonStr(collection)),
		element(0x02, "$db", bsonStr("db")),
	))
}

// send opens a client connection through the proxy, sends request and reports when the answer
// arrives.
func send(t *testing.T, proxyAddress string, request []byte) <-chan struct{} {
	answered := make(chan struct{})
	conn, err := net.Dial("tcp", proxyAddress)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(request); err != nil {
		t.Fatal(err)
	}
	go func() {
		if _, err := readMessage(conn); err == nil {
			close(answered)
		}
	}()
	return answered
}

func TestWritesWaitOnlyForWritesToTheSameCollection(t *testing.T) {
	backend, err := net.Listen("unix", filepath.Join(t.TempDir(), "ferretdb.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	release := make(chan struct{})
	go fakeFerretDB(t, backend, "db.slow", release)

	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	go newSerializingProxy("unix", backend.Addr().String()).serve(front)

	first := send(t, front.Addr().String(), writeTo("slow"))
	time.Sleep(50 * time.Millisecond) // let the first write take the collection's lock
	second := send(t, front.Addr().String(), writeTo("slow"))
	other := send(t, front.Addr().String(), writeTo("fast"))

	select {
	case <-other:
	case <-time.After(5 * time.Second):
		t.Fatal("a write to another collection waited for the held one")
	}
	select {
	case <-second:
		t.Fatal("a second write to the same collection did not wait")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	for _, answered := range []<-chan struct{}{first, second} {
		select {
		case <-answered:
		case <-time.After(5 * time.Second):
			t.Fatal("the held writes were not answered after release")
		}
	}
}
