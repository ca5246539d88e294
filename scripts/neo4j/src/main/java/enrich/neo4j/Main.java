package enrich.neo4j;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.QueryExecutionException;
import org.neo4j.harness.Neo4j;
import org.neo4j.harness.Neo4jBuilders;

/**
 * Starts the neo4j-harness in-process server with Bolt on a loopback port, prints its bolt URI on
 * one line of stdout, and runs until SIGTERM/SIGINT or, with --stdin, until standard input closes
 * (so a parent test process that dies takes the server with it).
 *
 * <p>Flags: --port N (0, the default, picks a free port), --password P (at least 8 characters;
 * default: auth disabled), --stdin, --dir D. Without --dir the harness keeps the store in a
 * temporary folder that goes away on stop. With --dir the same server runs as an embedded DBMS on
 * a store kept in D, so a test can stop it and start it again on the same port and data, as an
 * operator's server restarts.
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        try {
            run(args);
        } catch (Exception e) {
            // The server's own threads would keep a failed start-up alive: exit so neo4j.sh sees it.
            e.printStackTrace();
            System.exit(1);
        }
    }

    private static void run(String[] args) throws Exception {
        int port = 0;
        String password = null;
        Path dir = null;
        boolean watchStdin = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--port" -> port = Integer.parseInt(args[++i]);
                case "--password" -> password = args[++i];
                case "--dir" -> dir = Path.of(args[++i]);
                case "--stdin" -> watchStdin = true;
                default -> {
                    System.err.println("neo4j-test-server: unknown flag " + args[i]);
                    System.exit(2);
                }
            }
        }
        DatabaseManagementService dbms;
        String uri;
        Runnable close;
        if (dir == null) {
            Neo4j neo4j = Neo4jBuilders.newInProcessBuilder(Files.createTempDirectory("neo4j-test-server"))
                    .withDisabledServer()
                    .withConfig(BoltConnector.enabled, true)
                    .withConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                    .withConfig(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", port))
                    .withConfig(HttpConnector.enabled, false)
                    // Small caches: tests hold a few thousand nodes and share two cores with everything else.
                    .withConfig(GraphDatabaseSettings.pagecache_memory, 64L * 1024 * 1024)
                    .withConfig(GraphDatabaseSettings.auth_enabled, password != null)
                    .build();
            dbms = neo4j.databaseManagementService();
            uri = neo4j.boltURI().toString();
            close = neo4j::close;
        } else {
            if (port == 0) {
                System.err.println("neo4j-test-server: --dir needs a fixed --port so a restart keeps the address");
                System.exit(2);
            }
            dbms = new DatabaseManagementServiceBuilder(dir)
                    .setConfig(BoltConnector.enabled, true)
                    .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                    .setConfig(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", port))
                    .setConfig(GraphDatabaseSettings.pagecache_memory, 64L * 1024 * 1024)
                    .setConfig(GraphDatabaseSettings.auth_enabled, password != null)
                    .build();
            uri = "bolt://127.0.0.1:" + port;
            close = dbms::shutdown;
        }
        if (password != null) {
            // Both servers create the default "neo4j" user; give it the fixed development password.
            try {
                dbms.database("system").executeTransactionally(
                        "ALTER USER neo4j SET PASSWORD $p CHANGE NOT REQUIRED", Map.of("p", password));
            } catch (QueryExecutionException e) {
                // A kept store (--dir) already has it: Neo4j refuses to set the same password again.
                if (!String.valueOf(e.getMessage()).contains("cannot be the same")) {
                    dbms.shutdown();
                    throw e;
                }
            }
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            close.run();
            stopped.countDown();
        }));
        System.out.println(uri);
        System.out.flush();
        if (watchStdin) {
            drain(System.in);
            System.exit(0); // runs the shutdown hook
        }
        stopped.await();
    }

    private static void drain(InputStream in) {
        byte[] buf = new byte[256];
        try {
            while (in.read(buf) >= 0) {
                // Keep reading: only end of input stops the server.
            }
        } catch (IOException e) {
            // A broken stdin means the parent is gone: stop as for end of input.
        }
    }
}
